"""The recmine harness: registry, backends, measurement, results store, claims, reports and CLI.

Nothing outside `harness` imports it.
"""
