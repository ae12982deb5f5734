using System.Text.Json.Nodes;

namespace Sculpt.Deploy;

/// <summary>A model as the benchmark times it: its name, MACs per image, and a runner per executor.</summary>
/// <param name="Name">The model's name in tables and JSON.</param>
/// <param name="Macs">Multiply-accumulates per image, for GFLOP/s.</param>
/// <param name="Runner">A run over a fixed batch: (executor, batch, threads) → the action to time.</param>
/// <param name="Option">What to show of an executor's setting (ORT's optimisation level), per (executor, threads).</param>
public sealed record BenchSubject(string Name, long Macs, Func<string, int, int, Action> Runner, Func<string, int, string?> Option);

/// <summary>
/// The measurements behind <c>sculpt bench</c>: every subject timed alternately with the others, configuration by
/// configuration, so that machine noise hits them alike; rows as the JSON output writes them.
/// </summary>
public static class Benchmark
{
    /// <summary>
    /// Latency percentiles, frames/s and GFLOP/s against the peak measured with the same threads, per thread count,
    /// executor and batch size. Sculpt's engine is warmed for 1.5 s first (tiered compilation).
    /// </summary>
    public static List<JsonObject> Latencies(IReadOnlyList<BenchSubject> subjects, IReadOnlyList<string> engines, int[] threads, int[] batches, int runs,
        Action<string>? progress = null)
    {
        var rows = new List<JsonObject>();
        foreach (var t in threads)
        {
            double peak = Latency.PeakGflops(t);
            foreach (var engine in engines)
                foreach (var b in batches)
                {
                    var runners = subjects.Select(s => s.Runner(engine, b, t)).ToArray();
                    foreach (var r in runners) Latency.WarmUp(r, engine == "sculpt" ? 1.5 : 0);
                    int n = b == 1 ? runs : Math.Max(10, runs / b);
                    var stats = Latency.Alternating(runners, n, block: Math.Clamp(n / 10, 2, 10), maxSeconds: 60);
                    progress?.Invoke($"bench threads {t} {engine} batch {b}");
                    for (int k = 0; k < subjects.Count; k++)
                    {
                        double p50 = Common.Statistics.Percentile(stats[k], 50);
                        double gflops = 2.0 * subjects[k].Macs * b / (p50 / 1000) / 1e9;
                        rows.Add(new JsonObject
                        {
                            ["model"] = subjects[k].Name, ["backend"] = engine, ["threads"] = t, ["batch"] = b, ["runs"] = stats[k].Count,
                            ["ort_opt"] = subjects[k].Option(engine, t), ["engine"] = engine,
                            ["latency_ms"] = new JsonObject
                            {
                                ["p50"] = p50, ["p95"] = Common.Statistics.Percentile(stats[k], 95), ["p99"] = Common.Statistics.Percentile(stats[k], 99),
                            },
                            ["throughput_fps"] = b * 1000.0 / p50, ["gflops"] = gflops, ["peak_gflops"] = peak, ["fraction_of_peak"] = gflops / peak,
                            ["speedup_vs_first"] = k == 0 ? null : Common.Statistics.Percentile(stats[0], 50) / p50,
                        });
                    }
                }
        }
        return rows;
    }

    /// <summary>
    /// Frames/s of <paramref name="streams"/> concurrent single-threaded callers per executor and batch size: three
    /// <paramref name="window"/>-second windows per subject, alternating, the median counting.
    /// </summary>
    public static List<JsonObject> Streams(IReadOnlyList<BenchSubject> subjects, IReadOnlyList<string> engines, int[] batches, int streams, double window,
        Action<string>? progress = null)
    {
        var rows = new List<JsonObject>();
        foreach (var engine in engines)
            foreach (var b in batches)
            {
                progress?.Invoke($"bench {streams} streams {engine} batch {b}");
                var runners = subjects.Select(s => Enumerable.Range(0, streams).Select(_ => s.Runner(engine, b, 1)).ToList()).ToArray();
                var fps = subjects.Select(_ => new List<double>()).ToArray();
                for (int round = 0; round < 3; round++)
                    for (int k = 0; k < subjects.Count; k++) fps[k].Add(Latency.ConcurrentThroughput(runners[k], b, window));
                for (int k = 0; k < subjects.Count; k++)
                {
                    double f = Common.Statistics.Percentile(fps[k], 50);
                    rows.Add(new JsonObject
                    {
                        ["model"] = subjects[k].Name, ["backend"] = engine, ["ort_opt"] = subjects[k].Option(engine, 1), ["streams"] = streams,
                        ["threads_per_stream"] = 1, ["batch"] = b, ["throughput_fps"] = f,
                        ["speedup_vs_first"] = k == 0 ? null : f / Common.Statistics.Percentile(fps[0], 50),
                    });
                }
            }
        return rows;
    }
}
