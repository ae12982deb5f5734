using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Sculpt.Models;
using Sculpt.Onnx;
using Sculpt.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace Sculpt.Tests;

/// <summary>
/// Seeded mutation of small valid inputs, run through the readers in-process: every case must load or fail with
/// one clear line naming the file (an <see cref="InvalidDataException"/>), within a time box. Any other exception,
/// a hang, or a corruption that loads anyway where it must not is a failure.
/// </summary>
[CollectionDefinition("fuzz", DisableParallelization = true)]
public class FuzzCollection { }

[Collection("fuzz")]
public class FuzzTests(ITestOutputHelper log)
{
    private static readonly TimeSpan TimeBox = TimeSpan.FromSeconds(10);

    /// <summary>The suite's fixed seed, or SCULPT_FUZZ_SEED added to it to explore further (CI uses the fixed one).</summary>
    internal static Random Seeded(int seed) =>
        new(seed + (int.TryParse(Environment.GetEnvironmentVariable("SCULPT_FUZZ_SEED"), out var extra) ? extra : 0));

    internal sealed record Tally(string Reader)
    {
        public int Cases, Loaded, Refused;
        public override string ToString() => $"{Reader}: {Cases} cases, {Refused} refused with one line, {Loaded} loaded";
    }

    /// <summary>Runs one case; returns whether it loaded. Fails the test on anything but a clean refusal.</summary>
    internal static bool Case(Tally tally, string path, Action load, string what)
    {
        tally.Cases++;
        var task = Task.Run(load);
        bool finished;
        try { finished = task.Wait(TimeBox); }
        catch (AggregateException e) when (e.InnerException is InvalidDataException or FileNotFoundException or Data.DatasetException)
        {
            var message = e.InnerException.Message;
            Assert.True(message.StartsWith(path), $"{what}: the message does not name the file: {message}");
            Assert.False(message.TrimEnd().Contains('\n') || message.Contains('\0'), $"{what}: not one clean line: {message.Replace("\0", "\\0")}");
            tally.Refused++;
            return false;
        }
        catch (AggregateException e)
        {
            Assert.Fail($"{what}: {e.InnerException!.GetType().Name}: {e.InnerException.Message}\n{e.InnerException.StackTrace}");
            return false;
        }
        Assert.True(finished, $"{what}: did not finish within {TimeBox.TotalSeconds} s");
        tally.Loaded++;
        return true;
    }

    /// <summary>Where the real tools' files of scripts/make-input-fixtures.py are copied to.</summary>
    internal static readonly string InputsDir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "inputs");

    /// <summary>The torch.onnx exports of scripts/make-onnx-fixtures.py.</summary>
    private static readonly string OnnxDir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "onnx");

    /// <summary>
    /// The fuzz suite is a test project of its own so that its process holds nothing but the hostile inputs:
    /// the peak resident memory of the whole test process (VmHWM, since it started) must stay under 2 GiB.
    /// </summary>
    internal static void AssertProcessPeakUnder2GB(ITestOutputHelper log)
    {
        long peak = long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:"))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        log.WriteLine($"peak resident memory of the fuzz test process so far: {peak / 1048576.0:0} MiB");
        Assert.True(peak < 2L << 30, $"the fuzz test process peaked at {peak / 1048576.0:0} MiB resident (limit 2048 MiB)");
    }

    internal static byte[] Mutate(byte[] original, Random r)
    {
        var b = (byte[])original.Clone();
        switch (r.Next(5))
        {
            case 0: return b[..r.Next(b.Length)]; // truncated
            case 1: // a few flipped bits
                for (int k = r.Next(1, 9); k > 0; k--) b[r.Next(b.Length)] ^= (byte)(1 << r.Next(8));
                return b;
            case 2: // a length or count grown: a byte set to a large varint continuation
                for (int k = r.Next(1, 4); k > 0; k--) b[r.Next(b.Length)] = (byte)(0x80 | r.Next(128));
                return b;
            case 3: // random bytes in the middle
            {
                int at = r.Next(b.Length);
                var junk = new byte[r.Next(1, 64)];
                r.NextBytes(junk);
                return [.. b[..at], .. junk, .. b[at..]];
            }
            default: // a run duplicated
            {
                int at = r.Next(b.Length), len = Math.Min(r.Next(1, 256), b.Length - at);
                return [.. b[..(at + len)], .. b[at..(at + len)], .. b[(at + len)..]];
            }
        }
    }

    [Fact]
    public void OnnxImportRefusesMutatedRealExportsCleanly()
    {
        var dir = TestFiles.TempDir();
        var r = Seeded(12);
        var tally = new Tally("ONNX import");
        foreach (var name in new[] { "unet", "se_unet", "monai_unet", "lraspp_mobilenetv3" })
        {
            var original = File.ReadAllBytes(Path.Combine(OnnxDir, name + ".onnx"));
            int cases = name == "lraspp_mobilenetv3" ? 150 : 400;
            for (int i = 0; i < cases; i++)
            {
                var path = Path.Combine(dir, $"{name}-{i}.onnx");
                File.WriteAllBytes(path, Mutate(original, r));
                Case(tally, path, () => OnnxImport.Read(path), $"{name} case {i}");
                File.Delete(path);
            }
        }
        log.WriteLine(tally.ToString());
        AssertProcessPeakUnder2GB(log);
        Assert.True(tally.Refused > tally.Cases / 2);
    }

    [Fact]
    public void ImageAndNpyReadersRefuseMutatedRealFilesCleanly()
    {
        var dir = TestFiles.TempDir();
        var r = Seeded(14);
        // a PNG written by skimage and an .npy written by NumPy (the real tools), small enough to mutate by the hundred
        var png = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "frame-1024.png"));
        var npy = File.ReadAllBytes(Path.Combine(OnnxDir, "unet.output.npy"));
        foreach (var (name, original, read) in new (string, byte[], Action<string>)[]
        {
            ("PNG", png, p => Data.ImageIO.Read(p)),
            (".npy", npy, p => Data.Npy.Read(p)),
        })
        {
            var tally = new Tally(name);
            for (int i = 0; i < 300; i++)
            {
                var path = Path.Combine(dir, $"case-{i}{(name == "PNG" ? ".png" : ".npy")}");
                File.WriteAllBytes(path, Mutate(original, r));
                Case(tally, path, () => read(path), $"{name} case {i}");
                File.Delete(path);
            }
            log.WriteLine(tally.ToString());
        }
        AssertProcessPeakUnder2GB(log);
    }

    private static ModelPackage SmallPackage()
    {
        var g = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 2, InputSize = 8 });
        var meta = new ModelMeta();
        meta.Task.InputHeight = meta.Task.InputWidth = 8;
        return new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), meta);
    }

    private static Dictionary<string, byte[]> Entries(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        return zip.Entries.ToDictionary(e => e.FullName, e => { using var s = e.Open(); using var m = new MemoryStream(); s.CopyTo(m); return m.ToArray(); });
    }

    private static void Rezip(string path, Dictionary<string, byte[]> entries)
    {
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var (name, data) in entries)
        {
            using var s = zip.CreateEntry(name).Open();
            s.Write(data);
        }
    }

    /// <summary>A JSON document with one value retyped, removed, nulled, made huge or negative, or nested deep.</summary>
    internal static byte[] MutateJson(byte[] json, Random r)
    {
        var root = JsonNode.Parse(json)!;
        var values = new List<(JsonNode Parent, object Key)>();
        void Walk(JsonNode n)
        {
            if (n is JsonObject o) foreach (var (k, v) in o.ToList()) { values.Add((o, k)); if (v != null) Walk(v); }
            else if (n is JsonArray a) for (int i = 0; i < a.Count; i++) { values.Add((a, i)); if (a[i] != null) Walk(a[i]!); }
        }
        Walk(root);
        var (parent, key) = values[r.Next(values.Count)];
        JsonNode? replacement = r.Next(8) switch
        {
            0 => null,
            1 => "text",
            2 => JsonValue.Create(long.MaxValue),
            3 => JsonValue.Create(-1),
            4 => JsonValue.Create(0),
            5 => new JsonArray(),
            6 => JsonValue.Create(2_000_000_000),
            _ => "@@deep@@",
        };
        if (parent is JsonObject po)
        {
            if (r.Next(6) == 0) po.Remove((string)key); else po[(string)key] = replacement;
        }
        else ((JsonArray)parent)[(int)key] = replacement;
        // nesting far beyond any parser's depth limit, written as text (a JsonNode cannot hold it)
        return Encoding.UTF8.GetBytes(root.ToJsonString().Replace("\"@@deep@@\"", new string('[', 5000) + new string(']', 5000)));
    }

    /// <summary>A safetensors file whose header has one field retyped or an offset pushed towards 2^63.</summary>
    private static byte[] MutateSafetensors(byte[] st, Random r)
    {
        ulong headerLen = BitConverter.ToUInt64(st, 0);
        var header = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(st, 8, (int)headerLen).TrimEnd());
        byte[] newHeader;
        if (r.Next(3) == 0)
        {
            var root = JsonNode.Parse(header)!.AsObject();
            var tensor = root.ElementAt(r.Next(root.Count)).Value!.AsObject();
            var offs = tensor["data_offsets"]!.AsArray();
            long shift = r.Next(2) == 0 ? long.MaxValue - 4 : (1L << 62);
            offs[r.Next(2)] = JsonValue.Create(offs[0]!.GetValue<long>() + shift);
            newHeader = Encoding.UTF8.GetBytes(root.ToJsonString());
        }
        else newHeader = MutateJson(header, r);
        var result = new byte[8 + newHeader.Length + (st.Length - 8 - (int)headerLen)];
        BitConverter.TryWriteBytes(result.AsSpan(0, 8), (ulong)newHeader.Length);
        newHeader.CopyTo(result, 8);
        st.AsSpan(8 + (int)headerLen).CopyTo(result.AsSpan(8 + newHeader.Length));
        return result;
    }

    [Fact]
    public void PackagesRefuseMutationsCleanlyAndCatchEveryFlippedWeightBit()
    {
        var dir = TestFiles.TempDir();
        var valid = Path.Combine(dir, "valid.sculpt");
        SmallPackage().Save(valid);
        var original = File.ReadAllBytes(valid);
        var entries = Entries(valid);
        var r = Seeded(13);
        var raw = new Tally(".sculpt (raw bytes)");
        var entry = new Tally(".sculpt (entries)");
        for (int i = 0; i < 500; i++)
        {
            var path = Path.Combine(dir, $"raw-{i}.sculpt");
            File.WriteAllBytes(path, Mutate(original, r));
            Case(raw, path, () => ModelPackage.Load(path), $"raw case {i}");
        }
        foreach (var name in new[] { "graph.json", "meta.json", "weights.safetensors" })
            for (int i = 0; i < 300; i++)
            {
                var path = Path.Combine(dir, $"{name}-{i}.sculpt");
                var mutated = new Dictionary<string, byte[]>(entries)
                {
                    [name] = name == "weights.safetensors" ? MutateSafetensors(entries[name], r) : MutateJson(entries[name], r),
                };
                Rezip(path, mutated);
                Case(entry, path, () => ModelPackage.Load(path), $"{name} case {i}");
            }
        // a flipped bit anywhere in the stored weights is always caught (zip CRC-32)
        var weights = entries["weights.safetensors"];
        int start = FindSequence(original, weights[..64]);
        Assert.True(start > 0);
        var flips = new Tally(".sculpt (weight bit flips)");
        for (int i = 0; i < 100; i++)
        {
            var b = (byte[])original.Clone();
            b[start + 8 + r.Next(weights.Length - 8)] ^= (byte)(1 << r.Next(8));
            var path = Path.Combine(dir, $"flip-{i}.sculpt");
            File.WriteAllBytes(path, b);
            Assert.False(Case(flips, path, () => ModelPackage.Load(path), $"flip case {i}"), $"flip case {i} loaded");
        }
        foreach (var t in new[] { raw, entry, flips }) log.WriteLine(t.ToString());
        AssertProcessPeakUnder2GB(log);
    }

    private static int FindSequence(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    [Fact]
    public void PackageRegressionsOfTheHostileInputReport()
    {
        var dir = TestFiles.TempDir();
        var valid = Path.Combine(dir, "valid.sculpt");
        SmallPackage().Save(valid);
        var entries = Entries(valid);
        string Variant(string file, string entryName, Action<JsonNode> edit)
        {
            var path = Path.Combine(dir, file);
            var doc = JsonNode.Parse(entries[entryName])!;
            edit(doc);
            Rezip(path, new Dictionary<string, byte[]>(entries) { [entryName] = Encoding.UTF8.GetBytes(doc.ToJsonString()) });
            return path;
        }
        void Refused(string path, string mentions)
        {
            var e = Assert.Throws<InvalidDataException>(() => ModelPackage.Load(path));
            Assert.StartsWith(path, e.Message);
            Assert.Contains(mentions, e.Message);
        }
        Refused(Variant("null-inputs.sculpt", "graph.json", j => j["nodes"]![1]!["inputs"] = null), "null inputs");
        Refused(Variant("size0.sculpt", "meta.json", j => j["task"]!["input_height"] = 0), "input size");
        Refused(Variant("huge.sculpt", "meta.json", j => j["task"]!["input_width"] = 2_000_000_000), "input size");
        Refused(Variant("channels.sculpt", "meta.json", j => j["task"]!["input_channels"] = 3), "does not match the graph");
        Refused(Variant("std.sculpt", "meta.json", j => j["task"]!["normalization"]!["std"] = new JsonArray()), "normalization");
        Refused(Variant("labels.sculpt", "meta.json", j => j["task"]!["labels"] = null), "labels");
        // a bomb: meta.json declaring more than the cap is refused before it is inflated
        var bomb = Path.Combine(dir, "bomb.sculpt");
        using (var fs = File.Create(bomb))
        using (var zip = new ZipArchive(fs, ZipArchiveMode.Create))
        {
            foreach (var (name, data) in entries.Where(e => e.Key != "meta.json")) { using var s = zip.CreateEntry(name).Open(); s.Write(data); }
            using var m = zip.CreateEntry("meta.json", CompressionLevel.Optimal).Open();
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 20; i++) m.Write(zeros);
        }
        Refused(bomb, "more than the");
        Refused("/dev/zero", "not a regular file");
    }
}
