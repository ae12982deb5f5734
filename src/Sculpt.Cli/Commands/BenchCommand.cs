using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using System.Text.Json.Nodes;
using Sculpt.Deploy;
using Sculpt.Runtime;
using Sculpt.Common;
using Sculpt.Engine;
using Sculpt.Report;

namespace Sculpt.Cli.Commands;

public static class BenchCommand
{
    public const string Help = """
        sculpt bench --model M.sculpt|M.onnx [--compare M2] [--engine sculpt|ort|both] [--backend ort|torch|sculpt|both|all] [--threads 1,2]
                     [--batches 1,8,32] [--runs 200] [--streams S [--window W]] [--profile] [--ort-opt auto|all|extended|basic] [--json]

        CPU inference benchmark. For each model, backend and thread count: batch-1 latency p50/p95/p99 and
        throughput (frames/s at the p50 of each batch size), achieved GFLOP/s = 2·MACs·batch / latency and its
        fraction of a peak measured in the same run (a 1024×1024 float32 matrix multiply in ONNX Runtime's GEMM, with the
        same thread count). With --compare, the two models are timed alternately, configuration by
        configuration, in blocks of runs whose first run (re-warming the caches the other model evicted) is not
        counted, and the speed-up is the ratio of the medians. .sculpt models are exported to ONNX (batch norm
        folded) for the ORT backend; --ort-opt auto (default) opens each model at the faster of ORT's ALL and
        EXTENDED levels on this machine (column "opt"). Peak memory is the process's peak resident set.
        --streams S: also the throughput of S single-threaded ORT sessions running at once (one per core is how a
        small model fills a multi-core CPU), per batch size: the median of three W-second windows (default 2),
        alternating between the models with --compare.
        --profile: ONNX Runtime's profiler at batch 1 (last thread count) splits each model's run into time in
        operator kernels, by operator type, and time outside them (per-node dispatch and scheduling); with Sculpt's
        engine, its time per planned kernel with GFLOP/s (and % of the peak) and GB/s of the activations it moves, and
        the ceiling of the engine's vector width on one core (FMAs from registers: on a CPU or a process limited to AVX2
        it is below the peak, which ONNX Runtime's GEMM reaches with AVX-512 wherever the CPU has it).
        --engine sculpt|ort|both: Sculpt's own managed engine, ONNX Runtime, or both alternating (sets --backend;
        both = sculpt and ort). Sculpt's engine runs single-threaded per call; --threads applies to ORT only, and
        --streams runs S concurrent callers of one engine.

        example: sculpt bench --model dense.sculpt --compare pruned.sculpt --threads 1,2
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json", "profile" });
        var first = a.Required("model");
        var second = a.Get("compare");
        var backend = a.Get("engine") is { } engineText
            ? engineText switch { "sculpt" => "sculpt", "ort" => "ort", "both" => "sculpt,ort", var e => throw new UsageException($"--engine must be sculpt, ort or both, got '{e}'") }
            : a.Get("backend", "ort");
        var threads = a.Ints("threads", string.Join(",", Enumerable.Range(1, Environment.ProcessorCount)), 1, 1024);
        var batches = a.Ints("batches", "1,8,32", 1, 4096);
        int runs = a.Int("runs", 200, 1, int.MaxValue);
        int streams = a.Int("streams", 0, 0, 1024);
        double window = a.Double("window", 2, 0, 3600, aboveMin: true);
        bool json = a.Flag("json"), profile = a.Flag("profile");
        // null: per model and thread count, the faster of ALL and EXTENDED (OrtModel.Fastest)
        GraphOptimizationLevel? fixedLevel = a.Get("ort-opt", "auto") switch
        {
            "auto" => null, "all" => GraphOptimizationLevel.ORT_ENABLE_ALL, "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC, var o => throw new UsageException($"--ort-opt must be auto, all, extended or basic, got '{o}'"),
        };
        a.EnsureAllUsed();
        var backends = backend switch { "both" => new[] { "ort", "torch" }, "all" => new[] { "sculpt", "ort", "torch" }, _ => backend.Split(',') };
        if (backends.Any(b => b is not ("ort" or "torch" or "sculpt"))) throw new UsageException("--backend must be ort, torch, sculpt, both or all");
        TorchRuntime.Initialize();
        using var tmp = new TempFolder("sculpt-bench-");
        var paths = second is null ? new[] { first } : new[] { first, second };
        foreach (var path in paths.Where(p => p.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) && backends.Contains("torch")))
            throw new UsageException($"{path}: an ONNX file cannot be timed with the torch backend");
        var subjects = paths.Select(p => BenchModel.Load(p, tmp.Path, fixedLevel)).ToList();
        var progress = new ProgressLine();
        var timed = subjects.Select(s => s.Subject()).ToList();
        var rows = Benchmark.Latencies(timed, backends, threads, batches, runs, m => progress.Update(m));
        var streamRows = streams > 0 ? Benchmark.Streams(timed, backends.Where(x => x != "torch").ToList(), batches, streams, window, m => progress.Update(m)) : [];
        progress.Done();
        var profiles = profile && backends.Contains("ort")
            ? subjects.Select(s => (s.Name, P: OrtProfile.Measure(s.Ort.SourcePath, 1, Math.Min(runs, 100), threads[^1], s.Level(threads[^1]))))
                .ToList()
            : new();
        double peak1 = profile && backends.Contains("sculpt") ? Latency.PeakGflops(1) : 0;
        double ceiling = profile && backends.Contains("sculpt") ? Sculpt.Engine.VectorWidths.FmaCeilingGflops() : 0;
        int vectorBits = Sculpt.Engine.VectorWidths.Accelerated[0] * 32;
        var layerProfiles = profile && backends.Contains("sculpt")
            ? subjects.Select(s => (s.Name, Engine: s.Engine, Ms: s.Engine.ProfileLayers(Math.Min(runs, 100)))).ToList() : new();
        long peakRss = Process.GetCurrentProcess().PeakWorkingSet64;
        var best = rows.Concat(streamRows).Where(r => r["model"]!.GetValue<string>() == subjects[0].Name).MaxBy(r => r["throughput_fps"]!.GetValue<double>())!;
        var batch1 = rows.Where(r => r["model"]!.GetValue<string>() == subjects[0].Name && r["batch"]!.GetValue<int>() == 1).MinBy(r => r["latency_ms"]!["p50"]!.GetValue<double>())!;
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["model"] = first, ["compare"] = second, ["cpu_threads_available"] = Environment.ProcessorCount, ["peak_rss_bytes"] = peakRss,
                ["latency_ms"] = batch1["latency_ms"]!.DeepClone(), ["throughput_fps"] = best["throughput_fps"]!.GetValue<double>(),
                ["params"] = subjects.Select(s => s.Package?.Graph.ParameterCount()).First(), ["macs"] = subjects[0].Macs,
                ["results"] = new JsonArray(rows.Select(r => (JsonNode)r).ToArray()),
                ["streams"] = new JsonArray(streamRows.Select(r => (JsonNode)r).ToArray()),
                ["sculpt_layers"] = layerProfiles.Count > 0 ? new JsonArray(layerProfiles.Select(p => (JsonNode)new JsonObject
                {
                    ["model"] = p.Name, ["peak_gflops_1_thread"] = peak1, ["vector_bits"] = vectorBits, ["fma_ceiling_gflops"] = ceiling,
                    ["layers"] = new JsonArray(p.Engine.Layers.Select((l, i) => (JsonNode)new JsonObject
                    {
                        ["kernel"] = l.Name, ["macs"] = l.Macs, ["bytes"] = l.Bytes, ["ms"] = p.Ms[i],
                        ["gflops"] = 2.0 * l.Macs / (p.Ms[i] / 1000) / 1e9, ["gb_per_s"] = l.Bytes / (p.Ms[i] / 1000) / 1e9,
                    }).ToArray()),
                }).ToArray()) : null,
                ["profile"] = profile ? new JsonArray(profiles.Select(p => (JsonNode)new JsonObject
                {
                    ["model"] = p.Name, ["run_ms"] = p.P.RunMs, ["kernel_ms"] = p.P.KernelMs, ["overhead_ms"] = p.P.OverheadMs, ["nodes"] = p.P.Nodes,
                    ["by_op"] = new JsonArray(p.P.ByOp.Select(o => (JsonNode)new JsonObject { ["op"] = o.Op, ["count"] = o.Count, ["ms"] = o.Ms }).ToArray()),
                }).ToArray()) : null,
            });
            return 0;
        }
        Console.Write(Output.Table(new[] { "model", "backend", "opt", "threads", "batch", "p50 ms", "p95 ms", "p99 ms", "frames/s", "GFLOP/s", "% of peak", "speed-up" },
            rows.Select(r => new[]
            {
                r["model"]!.GetValue<string>(), r["backend"]!.GetValue<string>(), r["ort_opt"]?.GetValue<string>() ?? "", r["threads"]!.ToString(), r["batch"]!.ToString(),
                Output.F(r["latency_ms"]!["p50"]!.GetValue<double>(), "0.000"), Output.F(r["latency_ms"]!["p95"]!.GetValue<double>(), "0.000"), Output.F(r["latency_ms"]!["p99"]!.GetValue<double>(), "0.000"),
                Output.F(r["throughput_fps"]!.GetValue<double>(), "0"), Output.F(r["gflops"]!.GetValue<double>(), "0.00"), Output.F(100 * r["fraction_of_peak"]!.GetValue<double>(), "0.0"),
                r["speedup_vs_first"] is { } s ? $"{s.GetValue<double>():0.0}×" : "",
            }), new HashSet<int> { 0, 1, 2 }));
        if (streamRows.Count > 0)
        {
            Console.WriteLine($"\n{streams} concurrent single-threaded callers (ONNX Runtime: one session each; Sculpt: one engine):");
            Console.Write(Output.Table(new[] { "model", "backend", "opt", "streams", "batch", "frames/s", "speed-up" }, streamRows.Select(r => new[]
            {
                r["model"]!.GetValue<string>(), r["backend"]!.GetValue<string>(), r["ort_opt"]?.GetValue<string>() ?? "", r["streams"]!.ToString(), r["batch"]!.ToString(),
                Output.F(r["throughput_fps"]!.GetValue<double>(), "0"),
                r["speedup_vs_first"] is { } s ? $"{s.GetValue<double>():0.0}×" : "",
            }), new HashSet<int> { 0, 1, 2 }));
        }
        foreach (var (name, p) in profiles)
        {
            Console.WriteLine($"\n{name}: ONNX Runtime profile at batch 1, {threads[^1]} thread(s): run {p.RunMs:0.000} ms = {p.KernelMs:0.000} ms in {p.Nodes} operator kernels + {p.OverheadMs:0.000} ms outside them ({100 * p.OverheadMs / p.RunMs:0}%)");
            Console.Write(Output.Table(new[] { "operator", "nodes", "ms per run", "% of run" }, p.ByOp.Select(o => new[] { o.Op, o.Count.ToString(), Output.F(o.Ms, "0.000"), Output.F(100 * o.Ms / p.RunMs, "0.0") })));
        }
        foreach (var (name, engine, ms) in layerProfiles)
        {
            Console.WriteLine($"\n{name}: Sculpt's engine per planned kernel at batch 1 (sum {ms.Sum():0.000} ms; " +
                $"peak {peak1:0.0} GFLOP/s on 1 thread; " +
                $"its {vectorBits}-bit multiply-adds reach {ceiling:0.0} GFLOP/s from registers):");
            Console.Write(Output.Table(new[] { "#", "kernel", "output", "MMAC", "ms", "GFLOP/s", "% of peak", "GB/s" }, engine.Layers.Select((l, i) => new[]
            {
                i.ToString(System.Globalization.CultureInfo.InvariantCulture), l.Name, l.Output, Output.F(l.Macs / 1e6, "0.000"), Output.F(ms[i], "0.0000"),
                Output.F(2.0 * l.Macs / (ms[i] / 1000) / 1e9, "0.0"), Output.F(100 * 2.0 * l.Macs / (ms[i] / 1000) / 1e9 / peak1, "0"), Output.F(l.Bytes / (ms[i] / 1000) / 1e9, "0.0"),
            }), new HashSet<int> { 1, 2 }));
        }
        Console.WriteLine($"\npeak (1024² float32 matrix multiply, ONNX Runtime GEMM): {string.Join(", ", rows.Select(r => (r["threads"]!.GetValue<int>(), r["peak_gflops"]!.GetValue<double>())).Distinct().Select(p => $"{p.Item2:0.0} GFLOP/s at {p.Item1} thread(s)"))}; peak RSS {peakRss / 1048576.0:0} MiB");
        return 0;
    }
}
