// churn.cc [scale]: C++ containers, strings and new/delete (plain, array,
// over-aligned) through the preloaded malloc; deterministic output.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

struct alignas(256) Wide {
    unsigned char bytes[256];
};

int main(int argc, char **argv) {
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long n = (long)(200000 * scale);
    std::map<std::string, std::vector<int>> m;
    std::unordered_map<long, std::string> u;
    for (long i = 0; i < n; i++) {
        std::string k = "k" + std::to_string(i * 7919 % n);
        m[k].push_back((int)i);
        u[i] = std::string(i % 50, 'a' + i % 26);
    }
    for (long i = 0; i < n; i += 2) u.erase(i);
    unsigned long sum = 0;
    for (auto &kv : m) sum = (sum * 31 + kv.first.size() + kv.second.size()) % 1000000007;
    for (auto &kv : u) sum = (sum + kv.second.size()) % 1000000007;
    std::vector<std::unique_ptr<Wide>> wide;
    long misaligned = 0;
    for (long i = 0; i < n / 10; i++) {
        wide.emplace_back(new Wide);
        misaligned += ((unsigned long)wide.back().get() & 255) != 0;
        wide.back()->bytes[0] = (unsigned char)i;
    }
    for (auto &w : wide) sum += w->bytes[0];
    int *arr = new int[n];
    for (long i = 0; i < n; i++) arr[i] = (int)(i * 3);
    sum += arr[n - 1];
    delete[] arr;
    printf("map %zu unordered %zu wide %zu sum %lu\n", m.size(), u.size(), wide.size(), sum);
    if (misaligned) printf("misaligned over-aligned new: %ld\n", misaligned);
    return misaligned ? 1 : 0;
}
