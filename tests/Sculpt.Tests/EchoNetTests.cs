using Sculpt.Data;
using Sculpt.Tests.Fixtures;
using Sculpt.Training;
using Xunit;

namespace Sculpt.Tests;

[Collection("serial")]
public class EchoNetTests
{
    private static EchoNetFixture Make(int videos = 6) => new(Path.Combine(TestFiles.TempDir(), "echonet"), videos);

    [Fact]
    public void PolygonFillCountsBoundaryPixelsAsSkimageDoes()
    {
        // skimage.draw.polygon(r=[0,0,4,4], c=[0,4,4,0], shape=(8,8)) gives 25 pixels: rows and columns 0–4, edges included
        var m = Polygon.Fill(new double[] { 0, 4, 4, 0 }, new double[] { 0, 0, 4, 4 }, 8, 8);
        for (int r = 0; r < 8; r++) for (int c = 0; c < 8; c++) Assert.Equal(r <= 4 && c <= 4 ? 1 : 0, m[r * 8 + c]);
        // clipped to the frame: skimage gives 9 for the square from −3 to 2
        Assert.Equal(9, Polygon.Fill(new double[] { -3, 2, 2, -3 }, new double[] { -3, -3, 2, 2 }, 8, 8).Count(v => v == 1));
    }

    /// <summary>
    /// EchoNet-Dynamic's own rule (echo.py: rint, skimage.draw.polygon) on 20 seeded 112 × 112 tracings, four reaching
    /// past the frame (scripts/make-input-fixtures.py): Sculpt's masks are pixel-for-pixel the same.
    /// </summary>
    [Fact]
    public void MasksArePixelForPixelEchoNetsOwn()
    {
        var (tracings, shape) = Npy.Read(Path.Combine(RealInputTests.Dir, "echonet-tracings.npy"));
        var (pixels, _) = Npy.Read(Path.Combine(RealInputTests.Dir, "echonet-masks.npy"));
        Assert.Equal(new long[] { 20, 21, 4 }, shape);
        for (int k = 0; k < 20; k++)
        {
            var rows = Enumerable.Range(0, 21).Select(i => tracings.AsSpan((k * 21 + i) * 4, 4).ToArray())
                .Select(v => ((double)v[0], (double)v[1], (double)v[2], (double)v[3])).ToList();
            var expected = new byte[112 * 112];
            for (int p = 0; p < pixels.Length; p += 3)
                if ((int)pixels[p] == k) expected[(int)pixels[p + 1] * 112 + (int)pixels[p + 2]] = 1;
            Assert.True(expected.Count(v => v == 1) > 100, $"tracing {k}");
            Assert.Equal(expected, EchoNetDynamic.Mask(rows, 112, 112));
        }
    }

    [Fact]
    public void MotionJpegAviDecodesWithAndWithoutHuffmanTables()
    {
        var dir = TestFiles.TempDir();
        var frames = Enumerable.Range(0, 5).Select(f => EchoNetFixture.FramePixels(1, f)).ToArray();
        string with = Path.Combine(dir, "with.avi"), without = Path.Combine(dir, "without.avi");
        EchoNetFixture.WriteAvi(with, frames, stripHuffman: false);
        EchoNetFixture.WriteAvi(without, frames, stripHuffman: true);
        var avi = Avi.Read(without);
        Assert.Equal((EchoNetFixture.Size, EchoNetFixture.Size, "MJPG", 5), (avi.Width, avi.Height, avi.Codec, avi.Frames.Count));
        Assert.Equal(50, avi.Fps);
        Assert.False(Jpeg.HasHuffmanTables(avi.Frames[0]));
        var a = Video.ReadFrames(with);
        var b = Video.ReadFrames(without);
        Assert.Equal(5, a.Count);
        for (int f = 0; f < 5; f++)
        {
            Assert.Equal(a[f].Pixels, b[f].Pixels); // the standard tables are exactly what the encoder used
            double mad = a[f].Pixels.Zip(frames[f], (x, y) => Math.Abs(x - y)).Average();
            Assert.True(mad < 3, $"frame {f}: mean abs difference {mad} from the source pixels");
        }
    }

    [Fact]
    public void ReadsTheLayoutWithEdEsSplitsAndNormalisation()
    {
        var fx = Make();
        var ds = SegmentationDataset.Load(fx.Root);
        Assert.Equal("echonet-dynamic", ds.Format);
        Assert.Equal(3, ds.Channels);
        Assert.Equal(10, ds.Samples.Count); // 5 videos × (ED, ES); the sixth has one traced frame
        Assert.Contains(ds.Warnings, w => w.Contains("1 video(s) with fewer than two traced frames"));
        foreach (var (name, split) in fx.Videos.Take(5))
        {
            var traced = fx.Traces[name + ".avi"];
            var areas = traced.ToDictionary(t => t.Key, t => EchoNetDynamic.Mask(t.Value, EchoNetFixture.Size, EchoNetFixture.Size).Count(v => v == 1));
            int ed = areas.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key;
            int es = areas.Where(kv => kv.Key != ed).OrderBy(kv => kv.Value).ThenByDescending(kv => kv.Key).First().Key; // equal areas: the earlier frame is ED
            var edSample = Assert.Single(ds.Samples, s => s.Id == $"{name}_{ed}");
            var esSample = Assert.Single(ds.Samples, s => s.Id == $"{name}_{es}");
            Assert.Equal(("ED", "ES"), (edSample.Phase, esSample.Phase));
            Assert.Equal(split.ToLowerInvariant(), edSample.Split);
            Assert.Equal(EchoNetDynamic.Mask(traced[ed], EchoNetFixture.Size, EchoNetFixture.Size), edSample.Mask);
            // image planes hold the decoded frame (JPEG-lossy) of the traced frame
            var src = fx.Pixels[name][ed];
            double mad = Enumerable.Range(0, EchoNetFixture.Size * EchoNetFixture.Size).Average(p => Math.Abs(edSample.Image[p] * 255 - src[p * 3]));
            Assert.True(mad < 3, $"{name}: {mad}");
        }
        // EchoNet normalisation: per-channel mean/std over every frame of the training videos it keeps (≥ 2 traced frames), 0–255 scale
        var trainPixels = fx.Videos.Where(v => v.Split == "TRAIN" && fx.Traces[v.Name + ".avi"].Count >= 2).SelectMany(v => fx.Pixels[v.Name]).SelectMany(f => f.Where((_, i) => i % 3 == 0)).Select(v => (double)v).ToList();
        double mean = trainPixels.Average(), std = Math.Sqrt(trainPixels.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(ds.Normalization!.Mean[0] * 255, mean - 1.5, mean + 1.5);
        Assert.InRange(ds.Normalization.Std[0] * 255, std - 1.5, std + 1.5);
    }

    [Fact]
    public void PooledDiceIsDiceOverAllPixels()
    {
        var p = new[] { new byte[] { 1, 1, 0, 0 }, new byte[] { 1, 0, 0, 0 } };
        var t = new[] { new byte[] { 1, 0, 0, 0 }, new byte[] { 1, 1, 1, 0 } };
        Assert.Equal(2.0 * 2 / (3 + 4), Metrics.PooledDice(p, t, 1), 12);
    }

    private static void Replace(string file, string from, string to) => File.WriteAllText(file, File.ReadAllText(file).Replace(from, to));

    [Fact]
    public void BadInputFailsWithFileAndLineOrIsSkippedWhenLenient()
    {
        // a listed video that is missing
        var fx = Make();
        var victim = fx.Videos[1].Name;
        File.Delete(Path.Combine(fx.Root, "Videos", victim + ".avi"));
        var e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(fx.Root));
        Assert.Contains(victim + ".avi", e.Message);
        Assert.Contains("not found", e.Message);
        var lenient = SegmentationDataset.Load(fx.Root, lenient: true);
        Assert.Equal(8, lenient.Samples.Count);
        Assert.Contains(lenient.Warnings, w => w.Contains(victim));

        // a frame index beyond the video
        fx = Make();
        var tracings = Path.Combine(fx.Root, "VolumeTracings.csv");
        var lines = File.ReadAllLines(tracings);
        int line = Array.FindIndex(lines, l => l.StartsWith(fx.Videos[0].Name + ".avi,")) + 1;
        lines[line - 1] = string.Join(',', lines[line - 1].Split(',')[..5]) + ",99";
        File.WriteAllLines(tracings, lines);
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(fx.Root));
        Assert.Contains($"VolumeTracings.csv:{line}: frame 99", e.Message);

        // a tracing for a file FileList does not list
        fx = Make();
        tracings = Path.Combine(fx.Root, "VolumeTracings.csv");
        File.AppendAllText(tracings, "0XDEADBEEF.avi,1,2,3,4,5\r\n");
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(fx.Root));
        Assert.Contains("0XDEADBEEF.avi", e.Message);
        Assert.Contains($"VolumeTracings.csv:{File.ReadAllLines(tracings).Length}:", e.Message);
        Assert.Equal(10, SegmentationDataset.Load(fx.Root, lenient: true).Samples.Count);

        // malformed rows, reported with file and line
        fx = Make();
        tracings = Path.Combine(fx.Root, "VolumeTracings.csv");
        lines = File.ReadAllLines(tracings);
        lines[3] = lines[3].Replace(lines[3].Split(',')[1], "abc");
        File.WriteAllLines(tracings, lines);
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(fx.Root));
        Assert.Contains("VolumeTracings.csv:4: X1 'abc' is not a number", e.Message);
        var fileList = Path.Combine(fx.Root, "FileList.csv");
        Replace(fileList, ",VAL\r\n", ",VAL,extra\r\n");
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(fx.Root));
        Assert.Matches(@"FileList\.csv:\d+: expected 9 fields, found 10", e.Message);

        // a truncated AVI
        fx = Make();
        var avi = Path.Combine(fx.Root, "Videos", fx.Videos[2].Name + ".avi");
        var bytes = File.ReadAllBytes(avi);
        File.WriteAllBytes(avi, bytes[..(bytes.Length / 2)]);
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(fx.Root));
        Assert.Contains(fx.Videos[2].Name + ".avi: truncated AVI", e.Message);
    }

    [Fact]
    public void DataInfoAndExportWorkOnEchoNet()
    {
        var fx = Make();
        {
            var info = TestFiles.Cli("data", "info", "--data", fx.Root, "--json");
            Assert.True(info.Code == 0, info.Err);
            var j = System.Text.Json.Nodes.JsonNode.Parse(info.Out)!;
            Assert.Equal("echonet-dynamic", j["format"]!.GetValue<string>());
            Assert.Equal(5, j["ed_es"]!["ED"]!.GetValue<int>());
            var outDir = Path.Combine(TestFiles.TempDir(), "export");
            var export = TestFiles.Cli("data", "export", "--data", fx.Root, "--out", outDir);
            Assert.True(export.Code == 0, export.Err);
            var names = Directory.GetFiles(Path.Combine(outDir, "images")).Select(Path.GetFileNameWithoutExtension).Order().ToList();
            Assert.Equal(10, names.Count);
            Assert.Contains($"{fx.Videos[0].Name}_{fx.Traces[fx.Videos[0].Name + ".avi"].Keys.First()}", names);
            Assert.Equal(10, Directory.GetFiles(Path.Combine(outDir, "masks")).Length);

            File.Delete(Path.Combine(fx.Root, "Videos", fx.Videos[0].Name + ".avi"));
            var bad = TestFiles.Cli("data", "export", "--data", fx.Root, "--out", Path.Combine(TestFiles.TempDir(), "x"));
            Assert.Equal(1, bad.Code);
            Assert.Single(bad.Err.Trim().Split('\n'));
            Assert.Contains("not found", bad.Err);
        }
    }
}
