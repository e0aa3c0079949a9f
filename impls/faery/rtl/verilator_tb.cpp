// Verilator testbench for impls/faery/rtl (the Accelerator top, written out by sim.py).
// stdin: uint32 header {queries, beats, words per beat, words per query}, then the beats'
// words, then the queries' words (little-endian, 32 bits a word).  For each query it
// prints k lines "score id", then "cycles stalls passed peak_fill".  The beat memory
// answers mem_addr within the cycle, as the Amaranth testbench's memory does.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

template <std::size_t N>
static void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}
template <typename T>
static void put(T& port, const uint32_t* w) {
    uint64_t v = w[0];
    if (sizeof(T) > 4) v |= uint64_t(w[1]) << 32;
    port = T(v);
}

static bool read_words(std::vector<uint32_t>& out, std::size_t n) {
    out.resize(n);
    return std::fread(out.data(), sizeof(uint32_t), n, stdin) == n;
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    std::vector<uint32_t> header, beats, queries;
    if (!read_words(header, 4)) return 2;
    const uint32_t n_queries = header[0], n_beats = header[1], beat_words = header[2], query_words = header[3];
    if (!read_words(beats, std::size_t(n_beats) * beat_words) ||
        !read_words(queries, std::size_t(n_queries) * query_words)) return 2;
    std::vector<uint32_t> zero(beat_words, 0);

    Vtop* top = new Vtop;
    auto feed = [&]() {  // the memory's answer to this cycle's address
        uint64_t addr = top->mem_addr;
        put(top->mem_data, addr < n_beats ? &beats[addr * beat_words] : zero.data());
        top->eval();
    };
    auto tick = [&]() {
        top->clk = 1;
        top->eval();
        feed();
        top->clk = 0;
        top->eval();
    };
    top->clk = 0;
    top->rst = 1;
    top->eval();
    tick();
    top->rst = 0;
    feed();
    for (uint32_t q = 0; q < n_queries; ++q) {
        put(top->query, &queries[std::size_t(q) * query_words]);
        top->n_beats = n_beats;
        top->start = 1;
        top->eval();
        tick();
        top->start = 0;
        top->eval();
        for (;;) {
            tick();
            if (top->out_valid) {
                std::printf("%d %u\n", int32_t(top->out_score), unsigned(top->out_id));
                if (top->out_last) break;
            }
        }
        std::printf("%u %u %u %u\n", unsigned(top->cycle), unsigned(top->stalls), unsigned(top->passed),
                    unsigned(top->peak_fill));
        tick();  // idle (done) again: the next query may start
    }
    top->final();
    delete top;
    return 0;
}
