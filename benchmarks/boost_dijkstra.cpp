// Single-source shortest paths with Boost's dijkstra_shortest_paths, the engine of the classic demo.
// Reads a graph as text ("N M" then M lines "FROM TO COST", 0-based, cheapest arc per pair already),
// runs Dijkstra from each source given on the command line (or, with none, from each source read from
// standard input, one per line, answering each at once so that the caller can interleave engines), and
// prints one line per source: "<source> <milliseconds> <reachable> <sum of distances>" so the caller
// can check the distances.
// Usage: boost_dijkstra GRAPH_FILE {adjacency_list|csr} [SOURCE...]
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/dijkstra_shortest_paths.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

struct Arc {
    int64_t weight;
};

template <typename GraphT>
void run(const GraphT& graph, std::size_t node_count, char** sources, int source_count) {
    std::vector<int64_t> distance(node_count);
    std::vector<typename boost::graph_traits<GraphT>::vertex_descriptor> predecessor(node_count);
    const int64_t infinity = std::numeric_limits<int64_t>::max();
    const bool from_stdin = source_count == 0;
    for (int i = 0; from_stdin || i < source_count; ++i) {
        std::size_t source = 0;
        if (from_stdin) {
            if (std::scanf("%zu", &source) != 1) {
                break;
            }
        } else {
            source = static_cast<std::size_t>(std::atoll(sources[i]));
        }
        if (source >= node_count) {
            std::fprintf(stderr, "source %zu is not a node (0..%zu)\n", source, node_count - 1);
            std::exit(2);
        }
        const auto start = std::chrono::steady_clock::now();
        boost::dijkstra_shortest_paths(
            graph, boost::vertex(source, graph),
            boost::weight_map(boost::get(&Arc::weight, graph))
                .distance_map(boost::make_iterator_property_map(distance.begin(),
                                                                boost::get(boost::vertex_index, graph)))
                .predecessor_map(boost::make_iterator_property_map(predecessor.begin(),
                                                                   boost::get(boost::vertex_index, graph)))
                .distance_inf(infinity));
        const auto stop = std::chrono::steady_clock::now();
        long long reachable = 0;
        long long total = 0;
        for (int64_t d : distance) {
            if (d != infinity) {
                ++reachable;
                total += d;
            }
        }
        std::printf("%zu %.4f %lld %lld\n", source,
                    std::chrono::duration<double, std::milli>(stop - start).count(), reachable, total);
        std::fflush(stdout);
    }
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s GRAPH_FILE {adjacency_list|csr} [SOURCE...]\n", argv[0]);
        return 2;
    }
    std::FILE* input = std::fopen(argv[1], "r");
    if (input == nullptr) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    std::size_t node_count = 0;
    std::size_t arc_count = 0;
    if (std::fscanf(input, "%zu %zu", &node_count, &arc_count) != 2) {
        std::fprintf(stderr, "%s: bad header\n", argv[1]);
        return 1;
    }
    std::vector<std::pair<std::size_t, std::size_t>> ends(arc_count);
    std::vector<Arc> arcs(arc_count);
    for (std::size_t i = 0; i < arc_count; ++i) {
        long long weight = 0;
        if (std::fscanf(input, "%zu %zu %lld", &ends[i].first, &ends[i].second, &weight) != 3) {
            std::fprintf(stderr, "%s: bad arc %zu\n", argv[1], i);
            return 1;
        }
        arcs[i].weight = weight;
    }
    std::fclose(input);
    const std::string kind = argv[2];
    if (kind == "adjacency_list") {
        using GraphT = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property, Arc>;
        GraphT graph(ends.begin(), ends.end(), arcs.begin(), node_count);
        run(graph, node_count, argv + 3, argc - 3);
    } else if (kind == "csr") {
        using GraphT = boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, Arc>;
        GraphT graph(boost::edges_are_unsorted_multi_pass, ends.begin(), ends.end(), arcs.begin(), node_count);
        run(graph, node_count, argv + 3, argc - 3);
    } else {
        std::fprintf(stderr, "unknown graph kind %s\n", kind.c_str());
        return 2;
    }
    return 0;
}
