using System.IO.Compression;
using Sculpt.Data;
using Sculpt.Import;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// The readers on files written by the real tools (scripts/make-input-fixtures.py: ffmpeg, nibabel, torch.save),
/// compared with the tools' own decoding; and torch.save files carrying malicious pickles, none of which may run.
/// </summary>
public class RealInputTests
{
    public static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "inputs");
    private static string Fixture(string name) => Path.Combine(Dir, name);

    [Fact]
    public void FfmpegMotionJpegDecodesToFfmpegsOwnGreyLevels()
    {
        var frames = Video.ReadFrames(Fixture("ffmpeg.avi"));
        var (expected, shape) = Npy.Read(Fixture("ffmpeg.frames.npy"));
        Assert.Equal(new long[] { 6, 40, 48 }, shape);
        Assert.Equal(6, frames.Count);
        int worst = 0, compared = 0;
        for (int f = 0; f < frames.Count; f++)
        {
            var img = frames[f];
            Assert.Equal((48, 40), (img.Width, img.Height));
            for (int y = 0; y < 40; y++)
                for (int x = 0; x < 48; x++)
                {
                    // ffmpeg's grey is the decoded luma; ours is RGB from the same YCbCr, from which BT.601 luma is
                    // recovered exactly (the chroma terms cancel) unless a channel was clamped to 0 or 255
                    byte red = img[y, x, 0], green = img[y, x, 1], blue = img[y, x, 2];
                    if (new[] { red, green, blue }.Any(v => v is 0 or 255)) continue;
                    double luma = 0.299 * red + 0.587 * green + 0.114 * blue;
                    worst = Math.Max(worst, (int)Math.Round(Math.Abs(luma - expected[(f * 40 + y) * 48 + x])));
                    compared++;
                }
        }
        Assert.True(compared > frames.Count * 40 * 48 / 3, $"only {compared} pixels unclamped");
        // integer IDCTs differ by one level; the RGB round trip (each channel rounded) adds at most one more
        Assert.True(worst <= 2, $"largest grey-level difference from ffmpeg's decoding: {worst}");
    }

    [Theory]
    [InlineData("nibabel.nii.gz", "nibabel.npy", 0.3, 0.2)]
    [InlineData("nibabel-float.nii", "nibabel-float.npy", 0.154, 0.154)]
    [InlineData("metaimage.mhd", "metaimage.npy", 0.25, 0.5)]
    public void VolumesReadAsTheirToolReadsThem(string file, string expectedFile, double spacingX, double spacingY)
    {
        var image = MedicalVolume.Read(Fixture(file));
        var (expected, shape) = Npy.Read(Fixture(expectedFile));
        Assert.Equal((shape[1], shape[0]), (image.Width, image.Height));
        Assert.Equal(spacingX, image.SpacingX, 6);
        Assert.Equal(spacingY, image.SpacingY, 6);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(image.Pixels[i] - expected[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])), $"{file} pixel {i}: {image.Pixels[i]} vs {expected[i]}");
    }

    [Fact]
    public void ACamusSizedVolumeIsWithinTheLimits()
    {
        var image = MedicalVolume.Read(Fixture("camus-size.nii.gz"));
        Assert.Equal((1945, 1181), (image.Width, image.Height));
        foreach (var (x, y) in new[] { (0, 0), (1944, 1180), (800, 333) })
            Assert.Equal((x / 8 + y / 8) % 256, image.Pixels[y * image.Width + x]);
    }

    [Theory]
    [InlineData("state.pt")]
    [InlineData("state-legacy.pt")]
    public void TorchSaveStateDictsReadAsNumPyHoldsThem(string file)
    {
        var path = Fixture(file);
        var state = PyTorchCheckpoint.StateDict(PyTorchCheckpoint.Read(path), path);
        using var npz = ZipFile.OpenRead(Fixture("state.npz"));
        Assert.Equal(npz.Entries.Select(e => e.Name[..^4]).Order(), state.Keys.Order());
        var temp = TestFiles.TempDir();
        foreach (var entry in npz.Entries)
        {
            var npy = Path.Combine(temp, entry.Name);
            entry.ExtractToFile(npy);
            var (expected, shape) = Npy.Read(npy);
            var t = state[entry.Name[..^4]];
            Assert.Equal(shape, t.Shape);
            Assert.Equal(expected, t.Data);
        }
    }

    public const string Sentinel = "/tmp/sculpt-pickle-payload-ran";

    public static TheoryData<string> Payloads()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Dir, "payload-*").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    /// <summary>
    /// GLOBAL and STACK_GLOBAL naming os.system or eval, REDUCE calling them, NEWOBJ / NEWOBJ_EX building an object,
    /// BUILD setting its state, INST and OBJ: each is refused with one line naming the file, and nothing runs.
    /// </summary>
    [Theory]
    [MemberData(nameof(Payloads))]
    public void MaliciousPicklesAreRefusedAndNeverRun(string file)
    {
        File.Delete(Sentinel);
        var path = Fixture(file);
        var e = Assert.Throws<InvalidDataException>(() =>
        {
            if (file.EndsWith(".pkl"))
            {
                using var s = File.OpenRead(path);
                new PickleReader(s, path).Load();
            }
            else PyTorchCheckpoint.StateDict(PyTorchCheckpoint.Read(path), path);
        });
        Assert.StartsWith(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(e.Message.Contains("refused to load a pickled object") || e.Message.Contains("unsupported pickle opcode"), e.Message);
        Assert.False(File.Exists(Sentinel));
        // and through the CLI (a few of them, each a process): exit 1, one line
        if (file is not ("payload-system-p4.pt" or "payload-inst.pt" or "payload-newobj-p2-legacy.pt")) return;
        var r = TestFiles.Cli("import", "--pytorch", path, "--arch", "unet-small", "--out", Path.Combine(TestFiles.TempDir(), "m.sculpt"));
        Assert.Equal(1, r.Code);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.False(File.Exists(Sentinel));
    }
}
