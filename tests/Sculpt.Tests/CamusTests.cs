using System.IO.Compression;
using System.Text;
using Sculpt.Data;
using Xunit;

namespace Sculpt.Tests;

public class CamusTests
{
    internal const int W = 30, H = 40;

    private static byte[] Image(int seed) => Enumerable.Range(0, W * H).Select(i => (byte)((i * 7 + seed * 31) % 251)).ToArray();

    /// <summary>LV cavity, myocardium and atrium as nested/adjacent rectangles; the pattern shifts with the seed.</summary>
    private static byte[] Truth(int seed)
    {
        var m = new byte[W * H];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                m[y * W + x] = (byte)(x >= 8 && x < 22 && y >= 5 + seed % 3 && y < 25 ? (x >= 11 && x < 19 && y >= 8 ? 1 : 2) : x >= 10 && x < 20 && y >= 27 && y < 36 ? 3 : 0);
        return m;
    }

    /// <summary>NIfTI-1 single file: 348-byte header, 4 extension bytes, data at vox_offset 352 (x fastest).</summary>
    public static byte[] Nifti(byte[] pixels, float sx, float sy, bool gzip)
    {
        var h = new byte[352];
        BitConverter.GetBytes(348).CopyTo(h, 0);
        short[] dim = { 3, W, H, 1, 1, 1, 1, 1 };
        for (int i = 0; i < 8; i++) BitConverter.GetBytes(dim[i]).CopyTo(h, 40 + 2 * i);
        BitConverter.GetBytes((short)2).CopyTo(h, 70); // uint8
        BitConverter.GetBytes((short)8).CopyTo(h, 72);
        float[] pixdim = { 1, sx, sy, 1, 1, 1, 1, 1 };
        for (int i = 0; i < 8; i++) BitConverter.GetBytes(pixdim[i]).CopyTo(h, 76 + 4 * i);
        BitConverter.GetBytes(352f).CopyTo(h, 108);
        BitConverter.GetBytes(0f).CopyTo(h, 112); // scl_slope 0: no scaling
        Encoding.ASCII.GetBytes("n+1\0").CopyTo(h, 344);
        var file = h.Concat(pixels).ToArray();
        if (!gzip) return file;
        using var ms = new MemoryStream();
        using (var z = new GZipStream(ms, CompressionLevel.Fastest)) z.Write(file);
        return ms.ToArray();
    }

    private static void MetaImage(string mhdPath, byte[] pixels, double sx, double sy)
    {
        var raw = Path.ChangeExtension(mhdPath, ".raw");
        File.WriteAllBytes(raw, pixels);
        File.WriteAllText(mhdPath, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nCenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\nElementSpacing = {sx} {sy} 1\nDimSize = {W} {H} 1\nElementType = MET_UCHAR\nElementDataFile = {Path.GetFileName(raw)}\n"));
    }

    private static string NiftiRelease()
    {
        var root = Path.Combine(TestFiles.TempDir(), "CAMUS_public");
        int seed = 0;
        foreach (var p in new[] { "patient0001", "patient0002" })
        {
            var dir = Path.Combine(root, "database_nifti", p);
            Directory.CreateDirectory(dir);
            foreach (var view in new[] { "2CH", "4CH" })
                foreach (var phase in new[] { "ED", "ES" })
                {
                    File.WriteAllBytes(Path.Combine(dir, $"{p}_{view}_{phase}.nii.gz"), Nifti(Image(seed), 0.154f, 0.154f, true));
                    File.WriteAllBytes(Path.Combine(dir, $"{p}_{view}_{phase}_gt.nii.gz"), Nifti(Truth(seed), 0.154f, 0.154f, true));
                    seed++;
                }
            File.WriteAllBytes(Path.Combine(dir, $"{p}_4CH_half_sequence.nii.gz"), Nifti(Image(99), 0.154f, 0.154f, true)); // not a frame: ignored
        }
        Directory.CreateDirectory(Path.Combine(root, "database_split"));
        File.WriteAllText(Path.Combine(root, "database_split", "subgroup_training.txt"), "patient0001\n");
        File.WriteAllText(Path.Combine(root, "database_split", "subgroup_testing.txt"), "patient0002\n");
        return root;
    }

    [Fact]
    public void NiftiReleaseLoadsWithLabelsSpacingAndOfficialSplits()
    {
        var root = NiftiRelease();
        var ds = SegmentationDataset.Load(root, H, H);
        Assert.Equal("camus", ds.Format);
        Assert.Equal(Camus.Labels, ds.Labels);
        Assert.Equal(8, ds.Samples.Count);
        Assert.Equal(4, ds.Split("train").Count);
        Assert.Equal(4, ds.Split("test").Count);
        var s = Assert.Single(ds.Samples, x => x.Id == "patient0001_4CH_ES");
        Assert.Equal("ES", s.Phase);
        Assert.Equal(0.154, s.SpacingMm!.Value, 6); // 40-pixel square at 40 pixels: spacing unchanged
        // the 30-wide image sits centred in the 40-wide square: columns 5..34
        var truth = Truth(3);
        var img = Image(3);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < H; x++)
            {
                bool inside = x >= 5 && x < 35;
                Assert.Equal(inside ? truth[y * W + x - 5] : 0, s.Mask[y * H + x]);
                Assert.Equal(inside ? img[y * W + x - 5] / 255f : 0f, s.Image[y * H + x], 5);
            }
    }

    [Fact]
    public void MetaImageReleaseLoadsAndResizingScalesTheSpacing()
    {
        var root = Path.Combine(TestFiles.TempDir(), "camus");
        var dir = Path.Combine(root, "training", "patient0007");
        Directory.CreateDirectory(dir);
        MetaImage(Path.Combine(dir, "patient0007_2CH_ED.mhd"), Image(1), 0.3, 0.3);
        MetaImage(Path.Combine(dir, "patient0007_2CH_ED_gt.mhd"), Truth(1), 0.3, 0.3);
        MetaImage(Path.Combine(dir, "patient0007_4CH_ES.mhd"), Image(2), 0.3, 0.3); // testing-set style: no _gt
        var ds = SegmentationDataset.Load(root, 20, 20);
        var s = Assert.Single(ds.Samples);
        Assert.Equal("patient0007_2CH_ED", s.Id);
        Assert.Equal(0.3 * 40 / 20, s.SpacingMm!.Value, 9);
        Assert.Equal(new byte[] { 0, 1, 2, 3 }, s.Mask.Distinct().Order().ToArray());
        Assert.Contains(ds.Warnings, w => w.Contains("1 image(s) without a _gt mask"));
        // anisotropic pixels (0.3 × 0.6 mm) are resampled to square 0.3 mm pixels: 30 × 80, padded to 80 × 80
        MetaImage(Path.Combine(dir, "patient0007_2CH_ES.mhd"), Image(2), 0.3, 0.6);
        MetaImage(Path.Combine(dir, "patient0007_2CH_ES_gt.mhd"), Truth(2), 0.3, 0.6);
        var es = Assert.Single(SegmentationDataset.Load(root, 80, 80).Samples, x => x.Id == "patient0007_2CH_ES");
        Assert.Equal(0.3, es.SpacingMm!.Value, 9);
        int lvRows = Enumerable.Range(0, 80).Count(y => Enumerable.Range(0, 80).Any(x => es.Mask[y * 80 + x] == 1));
        int sourceRows = Enumerable.Range(0, H).Count(y => Enumerable.Range(0, W).Any(x => Truth(2)[y * W + x] == 1));
        Assert.Equal(2 * sourceRows, lvRows); // rows doubled, columns kept
        // the same pixels through both formats give the same image
        var nii = Path.Combine(root, "x.nii");
        File.WriteAllBytes(nii, Nifti(Image(1), 0.3f, 0.3f, false));
        Assert.Equal(MedicalVolume.Read(Path.Combine(dir, "patient0007_2CH_ED.mhd")).Pixels, MedicalVolume.Read(nii).Pixels);
    }

    [Fact]
    public void TruncatedNiftiFailsWithTheFileOrIsSkippedWhenLenient()
    {
        var root = NiftiRelease();
        var victim = Path.Combine(root, "database_nifti", "patient0002", "patient0002_2CH_ED_gt.nii.gz");
        var raw = Nifti(Truth(4), 0.154f, 0.154f, false);
        using (var ms = new MemoryStream())
        {
            using (var z = new GZipStream(ms, CompressionLevel.Fastest)) z.Write(raw.AsSpan(0, 352 + 100));
            File.WriteAllBytes(victim, ms.ToArray());
        }
        var e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(root, H, H));
        Assert.Contains(victim, e.Message);
        Assert.Contains("truncated", e.Message);
        var lenient = SegmentationDataset.Load(root, H, H, lenient: true);
        Assert.Equal(7, lenient.Samples.Count);
        // a header cut short
        using (var ms = new MemoryStream())
        {
            using (var z = new GZipStream(ms, CompressionLevel.Fastest)) z.Write(raw.AsSpan(0, 200));
            File.WriteAllBytes(victim, ms.ToArray());
        }
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(root, H, H));
        Assert.Contains("truncated NIfTI header", e.Message);
        // a gzip stream cut short
        File.WriteAllBytes(victim, File.ReadAllBytes(Path.Combine(root, "database_nifti", "patient0002", "patient0002_2CH_ES_gt.nii.gz"))[..60]);
        e = Assert.Throws<DatasetException>(() => SegmentationDataset.Load(root, H, H));
        Assert.Contains(victim, e.Message);
    }
}
