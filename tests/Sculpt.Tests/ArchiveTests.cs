using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Sculpt.Data;
using Sculpt.Deploy;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// An archive of studies as a hospital export holds them: cine loops as frame folders (nested by site), DICOM
/// files made by pydicom/dcmtk (with and without ultrasound regions), a damaged .dcm and a file that is no study;
/// segmented once, uninterrupted, as the reference every other way of running it must equal.
/// </summary>
public sealed class ArchiveFixture
{
    public readonly string Root = TestFiles.TempDir();
    public string Archive => Path.Combine(Root, "archive");
    public string Reference => Path.Combine(Root, "reference");
    public static string Model => Path.Combine(AppContext.BaseDirectory, "Fixtures", "lv-unet.sculpt");
    public readonly JsonNode ReferenceRun;

    public ArchiveFixture()
    {
        var data = Path.Combine(Root, "synth");
        SynthDataset.Write(data, new SynthOptions { Count = 3, Videos = 10, VideoFrames = 40, Seed = 5 });
        for (int v = 0; v < 10; v++)
        {
            var site = Path.Combine(Archive, v < 5 ? "site-a" : "site-b");
            Directory.CreateDirectory(site);
            Directory.Move(Path.Combine(data, "videos", $"video_{v:D4}"), Path.Combine(site, $"loop_{v:D2}"));
            // the generator's masks belong to the data set, not to a study as an archive holds it
            Directory.Delete(Path.Combine(site, $"loop_{v:D2}", "masks"), true);
        }
        Directory.CreateDirectory(Path.Combine(Archive, "dicom"));
        foreach (var name in new[] { "us-mono-rle.dcm", "us-mono-implicit.dcm" })
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", name), Path.Combine(Archive, "dicom", name));
        // a PACS export names its files without extensions: found by the DICOM header
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", "us-rgb-jpeg.dcm"), Path.Combine(Archive, "dicom", "IM0003"));
        File.WriteAllBytes(Path.Combine(Archive, "dicom", "damaged.dcm"),
            File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", "us-mono-rle.dcm"))[..700]);
        File.WriteAllText(Path.Combine(Archive, "README.txt"), "not a study");
        var r = TestFiles.Cli("segment", "--engine", "ort", "--model", Model, "--input", Archive, "--out", Reference, "--no-images", "--json");
        Assert.True(r.Code == 0, r.Err);
        ReferenceRun = JsonNode.Parse(r.Out)!;
    }

    public static Process StartCli(IDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "Sculpt.Cli"), args)
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }
}

public class ArchiveTests(ArchiveFixture fx) : IClassFixture<ArchiveFixture>
{
    [Fact]
    public void EveryStudyIsARowAndTheDamagedOneIsRecordedNotFatal()
    {
        Assert.Equal(14, fx.ReferenceRun["studies"]!.GetValue<int>());
        Assert.Equal(13, fx.ReferenceRun["processed"]!.GetValue<int>());
        Assert.Equal(1, fx.ReferenceRun["failed"]!.GetValue<int>());
        Assert.Equal(1, fx.ReferenceRun["ignored_files"]!.GetValue<int>());
        var lines = File.ReadAllLines(Path.Combine(fx.Reference, "summary.csv"));
        Assert.Equal(Archive.Header, lines[0]);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToDictionary(f => f[0]); // split naively: only the error column is quoted
        Assert.Equal(14, rows.Count);
        Assert.Equal(lines.Skip(1).Select(l => l.Split(',')[0]).Order(StringComparer.Ordinal), lines.Skip(1).Select(l => l.Split(',')[0]));
        // the error column is quoted (the message has commas) and names the file
        var damaged = lines.Single(l => l.StartsWith("dicom/damaged.dcm,"));
        Assert.StartsWith($"dicom/damaged.dcm,failed,,,,,,,,,,,\"{Path.Combine(fx.Archive, "dicom", "damaged.dcm")}: truncated", damaged);
        // each row is what the study's own summary.json says
        foreach (var (study, f) in rows.Where(r => r.Value[1] == "ok").ToList())
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.Reference, "studies", study, "summary.json")))!;
            Assert.Equal(summary["frames"]!.GetValue<int>().ToString(), f[2]);
            Assert.Equal(summary["beats"]?.AsArray().Count.ToString() ?? "0", f[3]);
            var ef = summary["ejection_fraction"]?.GetValue<double>();
            Assert.Equal(ef is { } e ? e.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) : "", f[10]);
            Assert.False(Directory.Exists(Path.Combine(fx.Reference, "studies", study, "masks")), "--no-images writes no masks");
        }
        // a cine folder from the generator: complete beats, EF, no physical size; the DICOM loop with regions: mL
        Assert.Equal("no_pixel_spacing", rows["site-a/loop_00"][11]);
        Assert.NotEqual("", rows["site-a/loop_00"][10]);
        Assert.Contains("no_pixel_spacing", rows["dicom/us-mono-implicit.dcm"][11]); // written without ultrasound regions
        Assert.DoesNotContain("no_pixel_spacing", rows["dicom/us-mono-rle.dcm"][11]);
        Assert.Equal("ok", rows["dicom/IM0003"][1]);
    }

    [Fact]
    public void AKilledRunResumesAndItsTableEqualsAnUninterruptedRun()
    {
        var outDir = Path.Combine(TestFiles.TempDir(), "out");
        using var child = ArchiveFixture.StartCli(null, "segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", outDir, "--no-images");
        var clock = Stopwatch.StartNew();
        // studies finished or recorded as failed; a summary.json inside a temporary folder is not yet one
        int Done() => !Directory.Exists(outDir) ? 0 : Directory.GetFiles(outDir, "summary.json", SearchOption.AllDirectories).Count(f => !f.Contains(".tmp-"))
            + (Directory.Exists(Path.Combine(outDir, "errors")) ? Directory.GetFiles(Path.Combine(outDir, "errors"), "*.txt", SearchOption.AllDirectories).Length : 0);
        while (Done() < 3 && !child.HasExited && clock.Elapsed.TotalSeconds < 120) Thread.Sleep(10);
        Assert.False(child.HasExited, "the run ended before it could be killed");
        child.Kill(); // SIGKILL: no handler runs, whatever was being written stays as it was
        child.WaitForExit();
        Assert.False(File.Exists(Path.Combine(outDir, "summary.csv")));
        int doneBefore = Done();
        var r = TestFiles.Cli("segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", outDir, "--no-images", "--json");
        Assert.True(r.Code == 0, r.Err);
        var run = JsonNode.Parse(r.Out)!;
        Assert.Equal(doneBefore, run["skipped"]!.GetValue<int>());
        Assert.Equal(14 - doneBefore, run["processed"]!.GetValue<int>() + run["failed_now"]!.GetValue<int>());
        Assert.Equal(1, run["failed"]!.GetValue<int>());
        Assert.Equal(File.ReadAllText(Path.Combine(fx.Reference, "summary.csv")), File.ReadAllText(Path.Combine(outDir, "summary.csv")));
        Assert.Empty(Directory.GetDirectories(outDir, "*.tmp-*", SearchOption.AllDirectories));
        // once more: everything is done or recorded as failed, nothing is segmented again
        var again = JsonNode.Parse(TestFiles.Cli("segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", outDir, "--no-images", "--json").Out)!;
        Assert.Equal((14, 0), (again["skipped"]!.GetValue<int>(), again["processed"]!.GetValue<int>()));
        // --retry-failed tries the damaged study again, and records it again
        var retry = JsonNode.Parse(TestFiles.Cli("segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", outDir,
            "--no-images", "--retry-failed", "--json").Out)!;
        Assert.Equal((13, 1, 1), (retry["skipped"]!.GetValue<int>(), retry["failed_now"]!.GetValue<int>(), retry["failed"]!.GetValue<int>()));
    }

    [Fact]
    public void FourShardProcessesFromAnIndexedJobMergedEqualOneRun()
    {
        var outDir = Path.Combine(TestFiles.TempDir(), "out");
        // as a Kubernetes Indexed Job starts them: the same command, the index in JOB_COMPLETION_INDEX
        var shards = Enumerable.Range(0, 4).Select(i => ArchiveFixture.StartCli(new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = $"{i}" },
            "segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", outDir, "--no-images", "--shard", "4", "--json")).ToList();
        var counts = new List<int>();
        foreach (var p in shards)
        {
            string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, stderr);
            counts.Add(JsonNode.Parse(stdout)!["studies"]!.GetValue<int>());
            p.Dispose();
        }
        Assert.Equal(14, counts.Sum());
        Assert.False(File.Exists(Path.Combine(outDir, "summary.csv")));
        var merged = TestFiles.Cli("segment", "--merge", outDir, "--json");
        Assert.True(merged.Code == 0, merged.Err);
        Assert.Equal((4, 14), (JsonNode.Parse(merged.Out)!["shards"]!.GetValue<int>(), JsonNode.Parse(merged.Out)!["studies"]!.GetValue<int>()));
        Assert.Equal(File.ReadAllText(Path.Combine(fx.Reference, "summary.csv")), File.ReadAllText(Path.Combine(outDir, "summary.csv")));

        // a merge with a shard missing names it and writes nothing
        var partial = Path.Combine(TestFiles.TempDir(), "partial");
        Directory.CreateDirectory(partial);
        foreach (var i in new[] { 0, 1, 3 }) File.Copy(Path.Combine(outDir, $"summary.shard-{i}-of-4.csv"), Path.Combine(partial, $"summary.shard-{i}-of-4.csv"));
        var refused = TestFiles.Cli("segment", "--merge", partial);
        Assert.Equal(1, refused.Code);
        Assert.Contains("2/4 missing", refused.Err);
        Assert.False(File.Exists(Path.Combine(partial, "summary.csv")));
    }

    /// <summary>Runs <paramref name="count"/> shard processes, two at a time (the machine's cores), and requires each to succeed.</summary>
    private static void RunShards(int count, Func<int, Process> start)
    {
        for (int first = 0; first < count; first += 2)
        {
            var running = Enumerable.Range(first, Math.Min(2, count - first)).Select(start).ToList();
            foreach (var p in running)
            {
                string stderr = p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.True(p.ExitCode == 0, stderr);
                p.Dispose();
            }
        }
    }


    [Fact]
    public void TheShippedKubernetesJobAndSlurmArrayRunThisAndMergeToOneRunsTable()
    {
        var root = TestFiles.RepoRoot();
        var dir = TestFiles.TempDir();
        // Kubernetes: the container command of the Indexed Job, once per completion index, the volumes mapped to folders here
        var job = File.ReadAllText(Path.Combine(root, "deploy", "k8s", "segment-archive-job.yaml"));
        int completions = int.Parse(Regex.Match(job, @"\bcompletions:\s*(\d+)").Groups[1].Value);
        Assert.Contains("completionMode: Indexed", job);
        var command = JsonSerializer.Deserialize<string[]>(Regex.Match(job, @"command:\s*(\[.*\])").Groups[1].Value)!;
        Assert.Equal(["sculpt", "segment"], command[..2]);
        Assert.Equal($"{completions}", command[Array.IndexOf(command, "--shard") + 1]);
        var onnx = Path.Combine(dir, "model.onnx");
        Assert.Equal(0, TestFiles.Cli("export", "--model", ArchiveFixture.Model, "--onnx", onnx).Code);
        var results = Path.Combine(dir, "results");
        string Mounted(string arg) => arg switch { "/models/model.onnx" => onnx, "/archive" => fx.Archive, "/results" => results, _ => arg };
        RunShards(completions, i => ArchiveFixture.StartCli(new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = $"{i}" },
            command[1..].Select(Mounted).ToArray()));
        var merge = JsonSerializer.Deserialize<string[]>(Regex.Match(File.ReadAllText(Path.Combine(root, "deploy", "k8s", "segment-merge-job.yaml")),
            @"command:\s*(\[.*\])").Groups[1].Value)!;
        Assert.Equal(0, TestFiles.Cli(merge[1..].Select(Mounted).ToArray()).Code);
        // the same model in ONNX Runtime, one process, no shards
        var single = Path.Combine(dir, "single");
        Assert.Equal(0, TestFiles.Cli("segment", "--engine", "ort", "--model", onnx, "--input", fx.Archive, "--out", single, "--no-images").Code);
        Assert.Equal(File.ReadAllText(Path.Combine(single, "summary.csv")), File.ReadAllText(Path.Combine(results, "summary.csv")));

        // Slurm: the array script, once per array index as sbatch --array=1-N would start it
        var script = Path.Combine(root, "deploy", "slurm", "segment-archive.sbatch");
        var array = Regex.Match(File.ReadAllText(script), @"#SBATCH --array=(\d+)-(\d+)");
        int min = int.Parse(array.Groups[1].Value), max = int.Parse(array.Groups[2].Value);
        var slurmOut = Path.Combine(dir, "slurm");
        RunShards(max - min + 1, i =>
        {
            var psi = new ProcessStartInfo("bash", [script]) { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.Environment["SCULPT"] = Path.Combine(AppContext.BaseDirectory, "Sculpt.Cli");
            psi.Environment["MODEL"] = ArchiveFixture.Model;
            psi.Environment["ARCHIVE"] = fx.Archive;
            psi.Environment["OUT"] = slurmOut;
            psi.Environment["SLURM_ARRAY_TASK_ID"] = $"{min + i}";
            psi.Environment["SLURM_ARRAY_TASK_MIN"] = $"{min}";
            psi.Environment["SLURM_ARRAY_TASK_COUNT"] = $"{max - min + 1}";
            return Process.Start(psi)!;
        });
        Assert.Equal(0, TestFiles.Cli("segment", "--merge", slurmOut).Code);
        Assert.Equal(File.ReadAllText(Path.Combine(fx.Reference, "summary.csv")), File.ReadAllText(Path.Combine(slurmOut, "summary.csv")));
    }

    [Fact]
    public void ShardIndexFromTheCommandLineKubernetesOrSlurm()
    {
        static Func<string, string?> Env(params (string, string)[] vars) => n => vars.FirstOrDefault(v => v.Item1 == n).Item2;
        Assert.Equal(new Shard(2, 4), Shard.Parse("2/4", Env()));
        Assert.Equal(new Shard(3, 8), Shard.Parse("8", Env(("JOB_COMPLETION_INDEX", "3"))));
        Assert.Equal(new Shard(0, 8), Shard.Parse("8", Env(("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "1")))); // --array=1-8
        Assert.Equal(new Shard(5, 8), Shard.Parse("8", Env(("SLURM_ARRAY_TASK_ID", "5"))));
        foreach (var (text, env) in new[] { ("4/4", Env()), ("-1/4", Env()), ("x/4", Env()), ("0", Env()), ("8", Env()), ("8", Env(("JOB_COMPLETION_INDEX", "8"))),
                     ("8", Env(("SLURM_ARRAY_TASK_ID", "abc"))), ("1/2/3", Env()) })
            Assert.Throws<ArgumentException>(() => Shard.Parse(text, env));
        // every study in exactly one shard, deterministically
        var studies = Enumerable.Range(0, 500).Select(i => $"site/{i:D4}.dcm").ToList();
        var owners = studies.Select(s => Enumerable.Range(0, 7).Single(i => new Shard(i, 7).Owns(s))).ToList();
        Assert.All(Enumerable.Range(0, 7), i => Assert.InRange(owners.Count(o => o == i), 40, 105));
        Assert.Equal(2, TestFiles.Cli("segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", TestFiles.TempDir(), "--shard", "9/4").Code);
        Assert.Equal(2, TestFiles.Cli("segment", "--engine", "ort", "--model", ArchiveFixture.Model, "--input", fx.Archive, "--out", Path.Combine(fx.Archive, "o")).Code);
    }
}
