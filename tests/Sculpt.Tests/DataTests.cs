using Sculpt.Clinical;
using Sculpt.Data;
using Xunit;

namespace Sculpt.Tests;

public class DataTests
{
    private static string WritePair(string dir, string id, int w, int h, byte[] mask, int maskW = -1, int maskH = -1)
    {
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        Directory.CreateDirectory(Path.Combine(dir, "masks"));
        var img = new Image8(w, h, 1, Enumerable.Range(0, w * h).Select(i => (byte)(i % 251)).ToArray());
        File.WriteAllBytes(Path.Combine(dir, "images", id + ".png"), ImageIO.EncodePng(img));
        File.WriteAllBytes(Path.Combine(dir, "masks", id + ".png"), ImageIO.EncodePng(new Image8(maskW < 0 ? w : maskW, maskH < 0 ? h : maskH, 1, mask)));
        return dir;
    }

    [Fact]
    public void SyntheticFramesAreDeterministicPerSeedAndDifferAcrossSeeds()
    {
        var a = SyntheticEcho.Frame(new SynthOptions { Seed = 3 }, 7);
        var b = SyntheticEcho.Frame(new SynthOptions { Seed = 3 }, 7);
        var c = SyntheticEcho.Frame(new SynthOptions { Seed = 4 }, 7);
        Assert.Equal(a.Image, b.Image);
        Assert.Equal(a.Mask, b.Mask);
        Assert.NotEqual(a.Image, c.Image);
        // the LV is present, a plausible fraction of the frame, and dark compared with the whole sector
        int lv = a.Mask.Count(v => v == 1);
        Assert.InRange(lv, 200, 2500);
        double lvMean = a.Image.Where((_, i) => a.Mask[i] == 1).Average(v => v);
        double sectorMean = a.Image.Where(v => v > 0).Average(v => v);
        Assert.True(lvMean < sectorMean);
    }

    [Fact]
    public void ExtraClassesLabelMyocardiumAndAtrium()
    {
        var (_, mask) = SyntheticEcho.Frame(new SynthOptions { ExtraClasses = true, Seed = 1 }, 0);
        Assert.Equal(new byte[] { 0, 1, 2, 3 }, mask.Distinct().OrderBy(v => v).ToArray());
    }

    [Fact]
    public void VideoEjectionFractionIsTheAreaLengthEfOfItsOwnMasks()
    {
        var o = new SynthOptions { Seed = 2, VideoFrames = 40 };
        var v = SyntheticEcho.Video(o, 0);
        Assert.Equal(40, v.Frames.Count);
        Assert.NotEmpty(v.EndDiastole);
        var efs = v.EndDiastole.Zip(v.EndSystole, (ed, es) =>
            AreaLength.EjectionFraction(AreaLength.Volume(v.Masks[ed], 112, 112), AreaLength.Volume(v.Masks[es], 112, 112)));
        Assert.Equal(efs.Average(), v.EjectionFraction, 9);
        Assert.InRange(v.EjectionFraction, 15, 80);
        foreach (var (ed, es) in v.EndDiastole.Zip(v.EndSystole)) Assert.True(v.Volumes[ed] > v.Volumes[es]);
    }

    [Fact]
    public void WrittenFolderReadsBackIdentically()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "set");
        var o = new SynthOptions { Count = 12, Seed = 5, Size = 64, Videos = 1, VideoFrames = 30 };
        SynthDataset.Write(dir, o);
        var ds = SegmentationDataset.Load(dir);
        Assert.Equal(12, ds.Samples.Count);
        Assert.Equal(64, ds.Height);
        Assert.Equal(new[] { "background", "lv" }, ds.Labels);
        var (img, mask) = SyntheticEcho.Frame(o, 3);
        var s = ds.Samples.Single(x => x.Id == "case_00003");
        Assert.Equal(mask, s.Mask);
        for (int i = 0; i < img.Length; i++) Assert.True(Math.Abs(img[i] - s.Image[i]) <= 0.5 / 255 + 1e-6);
        Assert.Equal(30, Directory.GetFiles(Path.Combine(dir, "videos", "video_0000"), "frame_*.png").Length);
        Assert.Equal(12, ds.Split("train").Count + ds.Split("val").Count + ds.Split("test").Count);
        Assert.True(ds.Split("val").Count >= 1 && ds.Split("test").Count >= 1);
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(dir)!, "*.tmp-*"));
    }

    [Fact]
    public void ForeignPngFolderWith0And255MasksIsResizedToTheModelInput()
    {
        var dir = TestFiles.TempDir();
        var mask = new byte[40 * 30];
        for (int y = 10; y < 20; y++) for (int x = 0; x < 20; x++) mask[y * 40 + x] = 255;
        WritePair(dir, "p1", 40, 30, mask);
        var ds = SegmentationDataset.Load(dir, 15, 20);
        var s = ds.Samples.Single();
        Assert.Equal(15 * 20, s.Mask.Length);
        Assert.Equal(new byte[] { 0, 1 }, s.Mask.Distinct().OrderBy(v => v).ToArray());
        // rows 10..19 of 30 map to rows 5..9 of 15; columns 0..19 of 40 to 0..9 of 20 (nearest neighbour)
        Assert.Equal(5 * 10, s.Mask.Count(v => v == 1));
        Assert.Equal(1, s.Mask[5 * 20 + 0]);
        Assert.Equal(0, s.Mask[4 * 20 + 0]);
        Assert.Equal(SegmentationDataset.DefaultSplit("p1"), s.Split);
    }

    /// <summary>
    /// 0/255 masks are binary only where every mask is: beside a 0/1 mask, a 255 is a label out of range, named at
    /// its first pixel whichever order the files come in, with or without a manifest that names two labels.
    /// </summary>
    [Fact]
    public void A255BesideZeroOneMasksIsOutOfRangeAtItsFirstPixel()
    {
        var dir = TestFiles.TempDir();
        var ones = new byte[8 * 8];
        ones[9] = 1;
        var twoFiftyFive = new byte[8 * 8];
        twoFiftyFive[8 * 3 + 5] = 255;
        WritePair(dir, "a", 8, 8, twoFiftyFive);
        WritePair(dir, "b", 8, 8, ones);
        var noManifest = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(dir));
        Assert.Contains("a.png: mask is not binary (holds label value 255)", noManifest.Message);
        File.WriteAllText(Path.Combine(dir, "manifest.json"), "{\"labels\": [\"background\", \"lv\"]}");
        var named = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(dir));
        Assert.EndsWith("a.png: label value 255 at pixel (5, 3) is out of range for labels [background, lv] (mask is not binary)",
            named.Message);
    }

    [Fact]
    public void BadDatasetsGiveOneLineErrorsNamingTheFile()
    {
        var missing = Assert.Throws<DatasetException>(() => SegmentationDataset.Load("/nonexistent/folder"));
        Assert.Contains("/nonexistent/folder", missing.Message);

        var sizeDir = WritePair(TestFiles.TempDir(), "a", 8, 8, new byte[6 * 6], 6, 6);
        var size = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(sizeDir));
        Assert.Contains("a.png", size.Message);
        Assert.Contains("does not match", size.Message);

        var labelDir = WritePair(TestFiles.TempDir(), "b", 4, 4, new byte[] { 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 });
        var label = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(labelDir));
        Assert.Contains("b.png", label.Message);

        var corruptDir = WritePair(TestFiles.TempDir(), "c", 4, 4, new byte[16]);
        var png = File.ReadAllBytes(Path.Combine(corruptDir, "images", "c.png"));
        File.WriteAllBytes(Path.Combine(corruptDir, "images", "c.png"), png[..(png.Length / 2)]);
        var corrupt = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(corruptDir));
        Assert.Contains("c.png", corrupt.Message);
        Assert.Contains("corrupt", corrupt.Message);

        var outOfRange = TestFiles.TempDir();
        SynthDataset.Write(Path.Combine(outOfRange, "s"), new SynthOptions { Count = 3, Size = 32 });
        File.WriteAllBytes(Path.Combine(outOfRange, "s", "masks", "case_00000.png"), ImageIO.EncodePng(new Image8(32, 32, 1, Enumerable.Repeat((byte)9, 32 * 32).ToArray())));
        var range = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(Path.Combine(outOfRange, "s")));
        Assert.Contains("label value 9", range.Message);

        foreach (var e in new Exception[] { missing, size, label, corrupt, range }) Assert.DoesNotContain("\n", e.Message);
    }
}
