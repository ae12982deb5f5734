using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Sculpt.Models;
using Sculpt.Onnx;
using Sculpt.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace Sculpt.Tests;

public class CliInputTests
{
    [Fact]
    public void OutOfRangeOptionsAndOutputsThatAreInputsAreUsageErrors()
    {
        var dir = TestFiles.TempDir();
        foreach (var args in new[]
        {
            new[] { "synth", "--out", Path.Combine(dir, "s"), "--frames", "0", "--videos", "1" },
            ["synth", "--out", Path.Combine(dir, "s"), "--size", "100000"],
            ["inspect", "--arch", "unet", "--size", "2000000000"],
        })
        {
            var r = TestFiles.Cli(args);
            Assert.Equal(2, r.Code);
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains("must be", r.Err);
        }
        // an unknown criterion or allocation is refused before any data is read or any folder made
        foreach (var (option, known) in new[] { ("--criterion", "taylor, l1"), ("--allocation", "global, uniform, cost") })
            foreach (var command in new[] { new[] { "demo" }, ["prune", "--model", "m", "--data", "d", "--compression", "2"] })
            {
                var r = TestFiles.Cli([.. command, "--out", Path.Combine(dir, "u"), option, "bogus"]);
                Assert.Equal(2, r.Code);
                Assert.Single(r.Err.Trim().Split('\n'));
                Assert.Contains($"{option}: unknown", r.Err);
                Assert.Contains(known, r.Err);
                Assert.False(Directory.Exists(Path.Combine(dir, "u")));
            }
        Assert.False(Directory.Exists(Path.Combine(dir, "s")));
        var model = Path.Combine(dir, "m.sculpt");
        var g = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 2, InputSize = 16 });
        var meta = new ModelMeta();
        meta.Task.InputHeight = meta.Task.InputWidth = 16;
        new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), meta).Save(model);
        var before = File.ReadAllBytes(model);
        foreach (var args in new[]
        {
            new[] { "prune", "--model", model, "--data", dir, "--compression", "2", "--out", model },
            ["export", "--model", model, "--onnx", model],
            ["import", "--onnx", model, "--out", model],
        })
        {
            var r = TestFiles.Cli(args);
            Assert.Equal(2, r.Code);
            Assert.Contains("is also an input", r.Err);
        }
        Assert.Equal(before, File.ReadAllBytes(model));
        // an output that cannot be written is reported before any training
        var t = TestFiles.Cli("train", "--data", dir, "--out", "/proc/sculpt-cannot/m.sculpt");
        Assert.Equal(1, t.Code);
        Assert.Contains("/proc/sculpt-cannot/m.sculpt: cannot be written", t.Err);
        // --lenient, as the help of data export says
        var data = Path.Combine(dir, "d");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", data, "--count", "4", "--size", "32").Code);
        Assert.Equal(0, TestFiles.Cli("data", "export", "--data", data, "--out", Path.Combine(dir, "e"), "--lenient").Code);
        // a device as an input: refused before anything reads it (/dev/zero never ends)
        foreach (var args in new[] { new[] { "import", "--onnx", "/dev/zero", "--out", Path.Combine(dir, "z.sculpt") },
                     ["import", "--pytorch", "/dev/zero", "--arch", "unet-small", "--out", Path.Combine(dir, "z.sculpt")], ["inspect", "--model", "/dev/zero"] })
        {
            var r = TestFiles.Cli(args);
            Assert.Equal(1, r.Code);
            Assert.Contains("/dev/zero: empty, or not a regular file", r.Err);
        }
    }
}

public class DataMismatchTests
{
    /// <summary>
    /// A binary model pruned against four-class masks had fine-tuned and written a model, validation Dice and all;
    /// prune now refuses the data as eval does, before any folder is made.
    /// </summary>
    [Fact]
    public void PruningOnDataWithOtherLabelsIsRefusedBeforeAnyWork()
    {
        var dir = TestFiles.TempDir();
        var model = Path.Combine(dir, "m.sculpt");
        var g = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 8, InputSize = 16 });
        var meta = new ModelMeta();
        meta.Task.InputHeight = meta.Task.InputWidth = 16;
        new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), meta).Save(model);
        var data = Path.Combine(dir, "four-class");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", data, "--count", "8", "--size", "32", "--extra-classes").Code);
        var output = Path.Combine(dir, "p.sculpt");
        var r = TestFiles.Cli("prune", "--model", model, "--data", data, "--compression", "2", "--out", output);
        Assert.Equal(1, r.Code);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.Contains($"{data}: 4 labels [background, lv, myocardium, la], the model segments 2 [background, lv]", r.Err);
        Assert.False(File.Exists(output));
        Assert.False(Directory.Exists(output + ".run"));
    }

    /// <summary>
    /// Binary synthetic frames at 64 px (the imported fixtures' size), and at 112 px (lv-unet's) with the foreground
    /// label named 'myo' instead of 'lv'.
    /// </summary>
    private static readonly Lazy<(string Lv, string Myo)> Binary = new(() =>
    {
        var dir = TestFiles.TempDir();
        string lv = Path.Combine(dir, "lv"), myo = Path.Combine(dir, "myo");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", lv, "--count", "12", "--size", "64", "--seed", "5").Code);
        Assert.Equal(0, TestFiles.Cli("synth", "--out", myo, "--count", "12", "--size", "112", "--seed", "5").Code);
        var manifest = Path.Combine(myo, "manifest.json");
        var json = JsonNode.Parse(File.ReadAllText(manifest))!;
        json["labels"] = new JsonArray("background", "myo");
        File.WriteAllText(manifest, json.ToJsonString());
        return (lv, myo);
    });

    private static string Import(string fixture)
    {
        var model = Path.Combine(TestFiles.TempDir(), fixture + ".sculpt");
        var r = TestFiles.Cli("import", "--onnx", Path.Combine(RealExportTests.Dir, fixture + ".onnx"), "--out", model);
        Assert.True(r.Code == 0, r.Err);
        return model;
    }

    /// <summary>
    /// One rule for train --init, prune and eval. An imported model's placeholder names ("class1") had let prune run on
    /// a folder that eval then refused for the same model; a model that names its label 'lv' is refused on frames whose
    /// label is 'myo' by prune and eval (their scores would be of another structure), and retrained to 'myo' by train.
    /// </summary>
    [Fact]
    public void LabelNamesAgreeUnlessTheModelsArePlaceholdersAndRetrainingTakesTheDatas()
    {
        var (lv, myo) = Binary.Value;
        var imported = Import("nnunet");
        Assert.Equal(new[] { "background", "class1" }, ModelPackage.Load(imported).Meta.Task.Labels);
        var e = TestFiles.Cli("eval", "--model", imported, "--data", lv, "--json");
        Assert.True(e.Code == 0, e.Err);
        Assert.Equal("lv", JsonNode.Parse(e.Out)!["labels"]![0]!["label"]!.GetValue<string>());

        var named = ArchiveFixture.Model;
        var dir = TestFiles.TempDir();
        string pruned = Path.Combine(dir, "p.sculpt"), retrained = Path.Combine(dir, "r.sculpt");
        foreach (var args in new string[][] { ["eval", "--model", named, "--data", myo],
                     ["prune", "--model", named, "--data", myo, "--compression", "2", "--out", pruned] })
        {
            var r = TestFiles.Cli(args);
            Assert.True(r.Code == 1, $"{args[0]}: exit {r.Code}, {r.Err}");
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains($"{myo}: label 1 is 'myo', the model's is 'lv' (2 labels [background, myo], "
                + "the model segments 2 [background, lv])", r.Err);
        }
        Assert.False(Path.Exists(pruned) || Path.Exists(pruned + ".run"));
        var t = TestFiles.Cli("train", "--init", named, "--data", myo, "--epochs", "1", "--batch", "4", "--out", retrained);
        Assert.True(t.Code == 0, t.Err);
        Assert.Equal(new[] { "background", "myo" }, ModelPackage.Load(retrained).Meta.Task.Labels);
    }

    /// <summary>
    /// A three-class model on binary frames: train --init had refused it ("1 output channel(s) needed, the model has
    /// 3") while prune fine-tuned it with a warning; both now train it, the missing class towards absence, and keep
    /// the model's third label. Eval scores every label the model segments, so it refuses the frames.
    /// </summary>
    [Fact]
    public void AModelOfMoreClassesRetrainsWithAWarningAndIsNotScoredOnFewer()
    {
        var (lv, _) = Binary.Value;
        var model = Import("se_unet");
        var retrained = Path.Combine(TestFiles.TempDir(), "r.sculpt");
        var t = TestFiles.Cli("train", "--init", model, "--data", lv, "--epochs", "1", "--batch", "4", "--out", retrained);
        Assert.True(t.Code == 0, t.Err);
        Assert.Contains("the classes the data lacks are trained towards absence", t.Err);
        var task = ModelPackage.Load(retrained).Meta.Task;
        Assert.Equal(new[] { "background", "lv", "class2" }, task.Labels);
        Assert.Equal("multiclass", task.Mode);
        var e = TestFiles.Cli("eval", "--model", retrained, "--data", lv);
        Assert.Equal(1, e.Code);
        Assert.Contains($"{lv}: 2 labels [background, lv], the model segments 3 [background, lv, class2]", e.Err);
    }
}

public class SymbolicLinkTests
{
    /// <summary>
    /// Frames that are symbolic links (datasets often link into shared storage) load as their targets: a link's
    /// own length had sized the read, so each was read as its first few bytes and refused as a corrupt image. A
    /// link loop and a dangling link are one-line errors naming the link.
    /// </summary>
    [Fact]
    public void LinkedFramesLoadAsTheirTargetsAndBrokenLinksAreNamed()
    {
        var root = TestFiles.TempDir();
        string real = Path.Combine(root, "real"), linked = Path.Combine(root, "linked");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", real, "--count", "6", "--size", "32", "--seed", "4").Code);
        foreach (var sub in new[] { "images", "masks" })
        {
            Directory.CreateDirectory(Path.Combine(linked, sub));
            foreach (var f in Directory.GetFiles(Path.Combine(real, sub)))
                File.CreateSymbolicLink(Path.Combine(linked, sub, Path.GetFileName(f)), f);
        }
        File.Copy(Path.Combine(real, "manifest.json"), Path.Combine(linked, "manifest.json"));
        var a = Sculpt.Data.SegmentationDataset.Load(real);
        var b = Sculpt.Data.SegmentationDataset.Load(linked);
        Assert.Equal(a.Samples.Count, b.Samples.Count);
        for (int i = 0; i < a.Samples.Count; i++)
        {
            Assert.Equal(a.Samples[i].Image, b.Samples[i].Image);
            Assert.Equal(a.Samples[i].Mask, b.Samples[i].Mask);
        }

        var first = Path.Combine(linked, "images", Path.GetFileName(Directory.GetFiles(Path.Combine(real, "images"))[0]));
        File.Delete(first);
        File.CreateSymbolicLink(first, Path.Combine(root, "absent.png"));
        var r = TestFiles.Cli("data", "info", "--data", linked);
        Assert.Equal((1, $"sculpt data: error: {first}: image not found"), (r.Code, r.Err.Trim()));
        File.Delete(first);
        string loopA = Path.Combine(root, "loop-a"), loopB = Path.Combine(root, "loop-b");
        File.CreateSymbolicLink(loopA, loopB);
        File.CreateSymbolicLink(loopB, loopA);
        File.CreateSymbolicLink(first, loopA);
        r = TestFiles.Cli("data", "info", "--data", linked);
        Assert.Equal(1, r.Code);
        Assert.StartsWith($"sculpt data: error: {first}: cannot follow the link: ", r.Err.Trim());
        Assert.Single(r.Err.Trim().Split('\n'));
    }
}

public class DatasetMemoryTests
{
    /// <summary>
    /// A folder of more large frames than fit in half of this process's memory is refused after the first frame is
    /// read, with one line that says so, instead of swapping or being killed: the loader had decoded every frame at
    /// its own size before resizing any. The frames here are links to one 4096×4096 PNG, as many as it takes.
    /// </summary>
    [Fact]
    public void FramesThatDoNotFitInMemoryAreRefusedBeforeTheyAreRead()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "large");
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        Directory.CreateDirectory(Path.Combine(dir, "masks"));
        const int side = 4096;
        string image = Path.Combine(dir, "frame.png"), mask = Path.Combine(dir, "mask.png");
        Sculpt.Data.ImageIO.WritePng(image, new Sculpt.Data.Image8(side, side, 1, new byte[side * side]));
        Sculpt.Data.ImageIO.WritePng(mask, new Sculpt.Data.Image8(side, side, 1, new byte[side * side]));
        long perFrame = (long)side * side * (sizeof(float) + 1);
        long frames = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2 / perFrame + 1;
        for (int i = 0; i < frames; i++)
        {
            File.CreateSymbolicLink(Path.Combine(dir, "images", $"f{i:D5}.png"), image);
            File.CreateSymbolicLink(Path.Combine(dir, "masks", $"f{i:D5}.png"), mask);
        }
        var output = Path.Combine(dir, "m.sculpt");
        var r = TestFiles.Cli("train", "--data", dir, "--epochs", "1", "--out", output);
        Assert.Equal(1, r.Code);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.True(r.Err.Contains(FormattableString.Invariant($"{dir}: {frames:N0} frames of 1×{side}×{side} need ")), r.Err);
        Assert.Contains("GiB in memory, more than half of the", r.Err);
        Assert.False(File.Exists(output));
    }

    /// <summary>
    /// A folder of images segmented as one study is held in memory as a video is: past the same bound it is refused
    /// from the images' headers, before any is decoded (it had decoded every image first, at its own size).
    /// </summary>
    [Fact]
    public void AnImageFolderTooLargeForOneStudyIsRefusedBeforeDecoding()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "study");
        Directory.CreateDirectory(dir);
        const int side = 4096;
        var image = Path.Combine(Path.GetDirectoryName(dir)!, "frame.png");
        Sculpt.Data.ImageIO.WritePng(image, new Sculpt.Data.Image8(side, side, 1, new byte[side * side]));
        long frames = Sculpt.Data.Video.MaxDecodedBytes / ((long)side * side) + 1;
        for (int i = 0; i < frames; i++) File.CreateSymbolicLink(Path.Combine(dir, $"img{i:D4}.png"), image);
        var output = Path.Combine(Path.GetDirectoryName(dir)!, "seg");
        var r = TestFiles.Cli("segment", "--model", ArchiveFixture.Model, "--input", dir, "--out", output, "--engine", "sculpt");
        Assert.Equal(1, r.Code);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.Contains($"{dir}: its images decode to more than", r.Err);
        Assert.False(Path.Exists(output));
    }
}

public class NumericOptionTests
{
    /// <summary>Every numeric option of every command that trains, prunes or reads data, with what its range allows.</summary>
    public static TheoryData<string, string> Options()
    {
        var data = new TheoryData<string, string>();
        foreach (var option in new[] { "compression", "max-params", "max-macs", "max-latency-ms", "min-dice", "round-to", "max-group-ratio",
                     "min-channels", "steps", "epochs", "final-epochs", "max-step-ratio", "ft-samples", "collapse-drop", "lr", "scratch-lr",
                     "control-budget", "batch", "latency-threads", "threads" })
            data.Add("prune", option);
        foreach (var option in new[] { "width", "depth", "epochs", "batch", "lr", "ema", "warmup", "threads" }) data.Add("train", option);
        foreach (var option in new[] { "frames", "epochs", "compression", "ft-samples", "max-step-ratio", "min-channels", "final-epochs",
                     "max-loss", "threads" })
            data.Add("demo", option);
        foreach (var option in new[] { "threads", "batches", "runs", "streams", "window" }) data.Add("bench", option);
        foreach (var option in new[] { "in-channels", "classes", "size" }) data.Add("import", option);
        data.Add("data export", "limit");
        data.Add("eval", "threads");
        return data;
    }

    /// <summary>
    /// NaN, a non-number, a value beyond any range and a negative one are usage errors naming the option, before
    /// anything is read, trained or written: before this test NaN learning rates trained to a NaN model and
    /// wrote it, a batch of 0 ended in an internal error, and --max-params 1e40 meant "no target".
    /// </summary>
    private static bool IsTarget(string option) => option is "compression" or "max-params" or "max-macs" or "max-latency-ms";

    [Theory]
    [MemberData(nameof(Options))]
    public void OutOfRangeValuesAreUsageErrorsBeforeAnyWork(string command, string option)
    {
        var dir = TestFiles.TempDir();
        string absent = Path.Combine(dir, "absent"), output = Path.Combine(dir, "out");
        string[] prefix = command switch
        {
            "prune" => ["prune", "--model", absent, "--data", absent, "--out", output,
                .. IsTarget(option) ? Array.Empty<string>() : ["--compression", "2"]],
            "train" => ["train", "--data", absent, "--out", output, .. option == "warmup" ? Array.Empty<string>() : ["--warmup", "0"]],
            "demo" => ["demo", "--out", output],
            "bench" => ["bench", "--model", absent],
            "import" => ["import", "--pytorch", absent, "--arch", "unet", "--out", output],
            "eval" => ["eval", "--model", absent, "--data", absent, "--out", output],
            _ => ["data", "export", "--data", absent, "--out", output],
        };
        foreach (var value in new[] { "nan", "abc", "1e40", "-1", "Infinity" })
        {
            var r = TestFiles.Cli([.. prefix, $"--{option}", value]);
            Assert.True(r.Code == 2, $"{command} --{option} {value}: exit {r.Code}, {r.Err}");
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains($"--{option} must be", r.Err);
            Assert.False(Path.Exists(output), $"{command} --{option} {value} left {output}");
        }
    }
}

public class HostilePickleTests
{
    /// <summary>A legacy torch.save file (five pickles in a row) whose object pickle is <paramref name="root"/>.</summary>
    private static string Legacy(byte[] root)
    {
        var magic = System.Numerics.BigInteger.Parse("119547037146038801333356").ToByteArray();
        byte[] Pickle(params byte[][] parts) => [0x80, 0x02, .. parts.SelectMany(p => p), (byte)'.'];
        var file = new List<byte>();
        file.AddRange(Pickle([0x8a, (byte)magic.Length], magic));            // LONG1 magic number
        file.AddRange(Pickle([(byte)'M', 0xe9, 0x03]));                     // BININT2 1001: protocol version
        file.AddRange(Pickle([(byte)'}']));                                 // sys_info
        file.AddRange(root);
        file.AddRange(Pickle([(byte)']']));                                 // storage keys
        var path = Path.Combine(TestFiles.TempDir(), "hostile.pt");
        File.WriteAllBytes(path, file.ToArray());
        return path;
    }

    [Fact]
    public void DeeplyNestedPicklesAreReadWithoutRecursion()
    {
        // 200,000 empty lists, each appended into the one below: a nesting no recursive walk survives
        const int depth = 200_000;
        var root = new List<byte> { 0x80, 0x02 };
        for (int i = 0; i < depth; i++) root.Add((byte)']');
        for (int i = 1; i < depth; i++) root.Add((byte)'a');
        root.Add((byte)'.');
        var path = Legacy(root.ToArray());
        var e = Assert.Throws<InvalidDataException>(() => Import.PyTorchCheckpoint.StateDict(Import.PyTorchCheckpoint.Read(path), path));
        Assert.Contains("not a dict", e.Message);
    }

    [Fact]
    public void DeclaredLengthsBeyondTheFileAreRefusedBeforeAllocating()
    {
        // BINUNICODE8 claiming 2^40 bytes, BINBYTES claiming 4 GB
        foreach (var op in new byte[][] { [0x8d, 0, 0, 0, 0, 0, 1, 0, 0], [(byte)'B', 0xff, 0xff, 0xff, 0xff] })
        {
            var path = Legacy([0x80, 0x02, .. op, (byte)'.']);
            var e = Assert.Throws<InvalidDataException>(() => Import.PyTorchCheckpoint.Read(path));
            Assert.Contains("more than the file holds", e.Message);
            Assert.StartsWith(path, e.Message);
        }
    }
}

public class HostileImageTests
{
    private static uint Crc(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data) { c ^= b; for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1; }
        return ~c;
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        byte[] Be(uint v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];
        return [.. Be((uint)data.Length), .. typed, .. Be(Crc(typed))];
    }

    [Fact]
    public void APngDeclaringGigapixelsIsRefusedBeforeDecoding()
    {
        // a valid PNG signature and IHDR (CRC correct) declaring 5,000 × 5,000 grey pixels, and no real data
        byte[] ihdr = [0, 0, 0x13, 0x88, 0, 0, 0x13, 0x88, 8, 0, 0, 0, 0];
        byte[] png = [0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10, .. Chunk("IHDR", ihdr), .. Chunk("IDAT", [0x78, 0x9c, 3, 0, 0, 0, 0, 1]), .. Chunk("IEND", [])];
        var path = Path.Combine(TestFiles.TempDir(), "huge.png");
        File.WriteAllBytes(path, png);
        var e = Assert.Throws<InvalidDataException>(() => Data.ImageIO.Read(path));
        Assert.Contains("5000×5000 pixels is larger than", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void MetaImageHeadersAreCheckedAndDataFilesStayInTheirFolder()
    {
        var dir = TestFiles.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "x.raw"), new byte[16]);
        void Refused(string header, string mentions)
        {
            var path = Path.Combine(dir, "x.mhd");
            File.WriteAllText(path, "ObjectType = Image\nNDims = 2\n" + header);
            var e = Assert.Throws<InvalidDataException>(() => Data.MedicalVolume.Read(path));
            Assert.StartsWith(path, e.Message);
            Assert.Contains(mentions, e.Message);
        }
        const string ok = "DimSize = 4 4\nElementType = MET_UCHAR\n";
        Refused(ok + "ElementDataFile = ../../../../../../etc/passwd\n", "outside the header's folder");
        Refused(ok + "ElementDataFile = /dev/zero\n", "outside the header's folder");
        Refused("DimSize = -5 4\nElementType = MET_UCHAR\nElementDataFile = x.raw\n", "not positive");
        Refused("DimSize = 4 abc\nElementType = MET_UCHAR\nElementDataFile = x.raw\n", "not an integer");
        Refused("DimSize = 100000 100000\nElementType = MET_UCHAR\nElementDataFile = x.raw\n", "larger than");
        Refused("ElementSpacing = 0 1\n" + ok + "ElementDataFile = x.raw\n", "positive numbers");
        // the valid header reads
        File.WriteAllText(Path.Combine(dir, "y.mhd"), "ObjectType = Image\nNDims = 2\n" + ok + "ElementDataFile = x.raw\n");
        Assert.Equal(16, Data.MedicalVolume.Read(Path.Combine(dir, "y.mhd")).Pixels.Length);
    }

    [Fact]
    public void ACompressedVolumeBombIsStoppedAtTheLimit()
    {
        var path = Path.Combine(TestFiles.TempDir(), "bomb.nii.gz");
        using (var f = File.Create(path))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
        {
            var zeros = new byte[1 << 20];
            for (long written = 0; written <= Data.InputLimits.MaxFileBytes; written += zeros.Length) z.Write(zeros);
        }
        var e = Assert.Throws<InvalidDataException>(() => Data.MedicalVolume.Read(path));
        Assert.Contains("decompresses to more than", e.Message);
    }
}

public class HostileSpacingTests
{
    /// <summary>A CAMUS image with 0.0001 mm pixels along x would resample to gigapixels: refused, naming the file.</summary>
    [Fact]
    public void ATinyPixelSpacingIsRefusedBeforeResampling()
    {
        var dir = TestFiles.TempDir();
        var pixels = new byte[CamusTests.W * CamusTests.H];
        File.WriteAllBytes(Path.Combine(dir, "patient0001_2CH_ED.nii.gz"), CamusTests.Nifti(pixels, 0.0001f, 0.3f, true));
        File.WriteAllBytes(Path.Combine(dir, "patient0001_2CH_ED_gt.nii.gz"), CamusTests.Nifti(pixels, 0.0001f, 0.3f, true));
        var e = Assert.Throws<Data.DatasetException>(() => Data.Camus.Load(dir, 64, 64));
        Assert.Contains("patient0001_2CH_ED.nii.gz: pixel spacing", e.Message);
        Assert.Contains("would resample to", e.Message);
    }
}

public class RealSizeInputTests
{
    /// <summary>
    /// The limits must not reject real data: a 1024 × 1024 frame written by skimage reads whole, and its header alone
    /// gives the bytes it decodes to (what segment bounds a folder of images by).
    /// </summary>
    [Fact]
    public void AFullSizeFrameStillReads()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "frame-1024.png");
        var img = Data.ImageIO.Read(path);
        Assert.Equal((1024, 1024, 1), (img.Width, img.Height, img.Channels));
        Assert.Equal((byte)((700 + 300) % 256), img[300, 700]);
        Assert.Equal(img.Pixels.LongLength, Data.ImageIO.DecodedBytes(path));
        // a JPEG's size comes after its JFIF and comment segments: read from the file's head, it is the decoded size too
        var jpeg = Path.Combine(AppContext.BaseDirectory, "Fixtures", "inputs", "ffmpeg-frame.jpg");
        var colour = Data.ImageIO.Read(jpeg);
        Assert.Equal((640, 480, 3), (colour.Width, colour.Height, colour.Channels));
        Assert.Equal(colour.Pixels.LongLength, Data.ImageIO.DecodedBytes(jpeg));
    }
}

public class CorruptResumeTests
{
    [Fact]
    public void CorruptOrOutOfRangeResumeStateIsOneLineNamingTheFile()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", data, "--count", "12", "--size", "32", "--seed", "4").Code);
        var model = Path.Combine(dir, "m.sculpt");
        var ckpt = model + ".ckpt";
        void TrainRefuses(string state, string mentions)
        {
            Directory.CreateDirectory(ckpt);
            File.WriteAllText(Path.Combine(ckpt, "state.json"), state);
            var r = TestFiles.Cli("train", "--data", data, "--arch", "unet-small", "--epochs", "2", "--resume", "--out", model);
            Assert.Equal(1, r.Code);
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains(Path.Combine(ckpt, "state.json"), r.Err);
            Assert.Contains(mentions, r.Err);
            Assert.False(File.Exists(model));
        }
        TrainRefuses("{", "corrupt resume state");
        TrainRefuses("{\"epoch\": -3, \"best_epoch\": 0, \"best_val_dice\": 0.5, \"history\": []}", "out of range");
        TrainRefuses("{\"epoch\": \"one\", \"best_epoch\": 0, \"best_val_dice\": 0.5, \"history\": []}", "not an integer");
        TrainRefuses("[1, 2]", "not an object");

        var run = Path.Combine(dir, "run");
        Directory.CreateDirectory(run);
        var g = Models.UNet.Build(new Models.UNetConfig { Depth = 1, BaseWidth = 4, InputSize = 32 });
        var meta = new ModelMeta();
        meta.Task.InputHeight = meta.Task.InputWidth = 32;
        new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), meta).Save(model);
        void PruneRefuses(string file, string text, string named, string mentions)
        {
            File.WriteAllText(Path.Combine(run, file), text);
            var r = TestFiles.Cli("prune", "--model", model, "--data", data, "--compression", "2", "--run", run, "--resume",
                "--out", Path.Combine(dir, "p.sculpt"));
            Assert.Equal(1, r.Code);
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains(Path.Combine(run, named), r.Err);
            Assert.Contains(mentions, r.Err);
            Assert.False(File.Exists(Path.Combine(dir, "p.sculpt")));
        }
        PruneRefuses("state.json", "{\"completed_step\": -1}", "state.json", "out of range");
        PruneRefuses("state.json", "{\"completed_step\": 1}", "steps.jsonl", "corrupt resume state"); // no steps.jsonl
        PruneRefuses("steps.jsonl", "{\"step\": \"x\"}\n", "steps.jsonl", "corrupt resume state");
    }

    /// <summary>
    /// A run folder resumed with another dense model had output that run's pruned model as this one's (at another
    /// compression than asked); the folder now records what made its steps, and a resume must match it.
    /// </summary>
    [Fact]
    public void AResumeWithAnotherModelOrStepOptionIsRefusedAndAFinalOptionIsNot()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", data, "--count", "12", "--size", "32", "--seed", "4").Code);
        string Model(string name, int width)
        {
            var g = Models.UNet.Build(new Models.UNetConfig { Depth = 1, BaseWidth = width, InputSize = 32 });
            var meta = new ModelMeta();
            meta.Task.InputHeight = meta.Task.InputWidth = 32;
            var path = Path.Combine(dir, name);
            new ModelPackage(g, TestFiles.WithBnStatistics(g, width), meta).Save(path);
            return path;
        }
        string first = Model("a.sculpt", 4), other = Model("b.sculpt", 6);
        string run = Path.Combine(dir, "run"), output = Path.Combine(dir, "p.sculpt");
        (int Code, string Out, string Err) Prune(string model, params string[] extra) => TestFiles.Cli([
            "prune", "--model", model, "--data", data, "--compression", "2", "--steps", "1", "--max-step-ratio", "3", "--epochs", "0",
            "--final-epochs", "0", "--no-control", "--run", run, "--out", output, .. extra]);
        var made = Prune(first);
        Assert.True(made.Code == 0, made.Err);
        File.Delete(output);
        foreach (var (model, extra, mentions) in new[]
        {
            (other, Array.Empty<string>(), "the run was made with dense model"),
            (first, ["--criterion", "l1"], "the run was made with criterion \"Taylor\", this command gives \"L1\""),
            (first, ["--seed", "3"], "the run was made with seed 0, this command gives 3"),
        })
        {
            var r = Prune(model, [.. extra, "--resume"]);
            Assert.Equal(1, r.Code);
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains(Path.Combine(run, "state.json"), r.Err);
            Assert.Contains(mentions, r.Err);
            Assert.False(File.Exists(output));
        }
        // what only the final stages read may change: the run resumes after its last step
        var resumed = Prune(first, "--final-epochs", "1", "--resume");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.True(File.Exists(output));
    }
}

public class AtomicFileTests
{
    /// <summary>When the second of two files cannot be written, the first is not left behind alone, nor any temporary.</summary>
    [Fact]
    public void FilesThatBelongTogetherArriveTogetherOrNotAtAll()
    {
        var dir = TestFiles.TempDir();
        var notAFolder = Path.Combine(dir, "plain-file");
        File.WriteAllText(notAFolder, "x");
        var e = Assert.Throws<IOException>(() => global::Sculpt.Common.AtomicFile.WriteAllTexts(
            [(Path.Combine(dir, "first.csv"), "a,b\n"), (Path.Combine(notAFolder, "second.json"), "{}")]));
        Assert.StartsWith(Path.Combine(notAFolder, "second.json") + ": cannot write", e.Message);
        Assert.Equal(["plain-file"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));

        global::Sculpt.Common.AtomicFile.WriteAllTexts(
            [(Path.Combine(dir, "first.csv"), "a,b\n"), (Path.Combine(dir, "second.json"), "{}")]);
        Assert.Equal("a,b\n", File.ReadAllText(Path.Combine(dir, "first.csv")));
        Assert.Equal("{}", File.ReadAllText(Path.Combine(dir, "second.json")));
        Assert.Equal(3, Directory.EnumerateFileSystemEntries(dir).Count());
    }
}
