"""Data types, loaders, generators and the named standard workloads.

`workloads.catalog` holds the registry; each data module registers its named
workloads when imported.
"""
