using System.Text;
using Sculpt.Data;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// The DICOM reader on files made by independent tools (scripts/make-dicom-fixtures.py): pydicom wrote the
/// uncompressed ones, dcmtk's dcmcrle and dcmcjpeg compressed them, and dcmtk's own decoding is the reference.
/// </summary>
public class DicomTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", name);

    /// <summary>A uint8 .npy (format 1.0) as NumPy wrote it: magic, version, header length, header, data.</summary>
    private static (byte[] Data, int[] Shape) ReadU1(string path)
    {
        var b = File.ReadAllBytes(path);
        int headerLength = BitConverter.ToUInt16(b, 8);
        var header = Encoding.ASCII.GetString(b, 10, headerLength);
        Assert.Contains("'|u1'", header);
        var shape = System.Text.RegularExpressions.Regex.Match(header, @"'shape': \(([^)]*)\)").Groups[1].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        return (b[(10 + headerLength)..], shape);
    }

    private static byte[] Concatenated(DicomCine cine) => cine.Frames.SelectMany(f => f.Pixels).ToArray();

    [Theory]
    [InlineData("us-mono-explicit.dcm", "us-mono.frames.npy", Dicom.ExplicitLittle)]
    [InlineData("us-mono-implicit.dcm", "us-mono.frames.npy", Dicom.ImplicitLittle)]
    [InlineData("us-rgb-explicit.dcm", "us-rgb.frames.npy", Dicom.ExplicitLittle)]
    [InlineData("us-mono-rle.dcm", "us-mono.frames.npy", Dicom.Rle)]
    [InlineData("us-rgb-rle.dcm", "us-rgb.frames.npy", Dicom.Rle)]
    public void LosslessFilesDecodeToTheWrittenFramesExactly(string file, string frames, string syntax)
    {
        var cine = Dicom.Read(Fixture(file));
        var (expected, shape) = ReadU1(Fixture(frames));
        Assert.Equal(syntax, cine.TransferSyntax);
        Assert.Equal(shape[0], cine.Frames.Count);
        Assert.All(cine.Frames, f => Assert.Equal((shape[2], shape[1], shape.Length == 4 ? 3 : 1), (f.Width, f.Height, f.Channels)));
        Assert.Equal(expected, Concatenated(cine));
    }

    private static (DicomCine Cine, byte[] Expected) Jpeg(string file, string reference, string photometric)
    {
        var cine = Dicom.Read(Fixture(file));
        var (expected, shape) = ReadU1(Fixture(reference));
        Assert.Equal((Dicom.JpegBaseline, photometric), (cine.TransferSyntax, cine.Photometric));
        Assert.Equal(shape[0], cine.Frames.Count);
        Assert.Equal(expected.Length, Concatenated(cine).Length);
        return (cine, expected);
    }

    [Fact]
    public void GreyJpegBaselineFramesEqualDcmtksDecoding()
    {
        // Sculpt's decoder computes IJG's integer IDCT: every sample equal, not merely within the ≤ 1 level asked
        var (cine, expected) = Jpeg("us-mono-jpeg.dcm", "us-mono-jpeg.dcmtk-frames.npy", "MONOCHROME2");
        Assert.Equal(expected, Concatenated(cine));
    }

    [Fact]
    public void ColourJpegBaselineFramesEqualDcmtksDecoding()
    {
        // YBR_FULL_422 as dcmcjpeg writes it: 4:2:2 chroma, upsampled and converted to RGB as IJG's library does
        // (StbImageSharp, used before, was up to 23 levels off in 6% of the samples)
        var (cine, expected) = Jpeg("us-rgb-jpeg.dcm", "us-rgb-jpeg.dcmtk-frames.npy", "YBR_FULL_422");
        Assert.Equal(expected, Concatenated(cine));
    }

    [Fact]
    public void TimingAndPhysicalPixelSizeComeFromTheirModules()
    {
        var withRegions = Dicom.Read(Fixture("us-mono-explicit.dcm"));
        Assert.Equal(33.3, withRegions.FrameTimeMs);
        Assert.Equal(new PixelSpacing(0.3, 0.3), withRegions.Spacing); // PhysicalDeltaX/Y 0.03 cm
        var cineRate = Dicom.Read(Fixture("us-mono-implicit.dcm"));
        Assert.Equal(40.0, cineRate.FrameTimeMs); // Cine Rate 25 frames/s
        Assert.Null(cineRate.Spacing);
        Assert.Equal(new PixelSpacing(0.3, 0.3), Dicom.Read(Fixture("us-rgb-jpeg.dcm")).Spacing);
    }

    [Fact]
    public void VideoInputsRecogniseDicomByItsPrefix()
    {
        var frames = Video.ReadFrames(Fixture("us-rgb-rle.dcm"));
        Assert.Equal(Concatenated(Dicom.Read(Fixture("us-rgb-explicit.dcm"))), frames.SelectMany(f => f.Pixels).ToArray());
    }

    [Fact]
    public void UnsupportedAndDamagedFilesAreRefusedInOneLineNamingTheFile()
    {
        var dir = TestFiles.TempDir();
        // JPEG 2000: the same file with its transfer syntax UID changed (same length, so the meta group stays valid)
        var bytes = File.ReadAllBytes(Fixture("us-mono-jpeg.dcm"));
        var uid = Encoding.ASCII.GetBytes(Dicom.JpegBaseline);
        int at = bytes.AsSpan().IndexOf(uid);
        Assert.True(at > 0);
        Encoding.ASCII.GetBytes("1.2.840.10008.1.2.4.90").CopyTo(bytes, at);
        var j2k = Path.Combine(dir, "j2k.dcm");
        File.WriteAllBytes(j2k, bytes);
        var e = Assert.Throws<InvalidDataException>(() => Dicom.Read(j2k));
        Assert.StartsWith(j2k + ": transfer syntax JPEG 2000 lossless", e.Message);

        foreach (var name in new[] { "us-mono-explicit.dcm", "us-mono-implicit.dcm", "us-rgb-rle.dcm", "us-rgb-jpeg.dcm" })
        {
            var whole = File.ReadAllBytes(Fixture(name));
            foreach (var length in new[] { 0, 100, 132, 140, 300, whole.Length / 2, whole.Length - 7, whole.Length - 1 })
            {
                var cut = Path.Combine(dir, $"cut-{length}-{name}");
                File.WriteAllBytes(cut, whole[..length]);
                var error = Assert.Throws<InvalidDataException>(() => Dicom.Read(cut));
                Assert.StartsWith(cut + ":", error.Message);
                Assert.DoesNotContain('\n', error.Message);
            }
        }
    }
}

[Collection("serial")]
public class DicomSegmentTests
{
    [Fact]
    public void SegmentReadsAnUltrasoundDicomWithItsTimingAndPixelSize()
    {
        var dir = TestFiles.TempDir();
        var model = TestFiles.UntrainedModel(dir, 32);
        var outDir = Path.Combine(dir, "seg");
        var r = TestFiles.Cli("segment", "--model", model, "--input",
            Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", "us-rgb-rle.dcm"),
            "--out", outDir, "--json");
        Assert.True(r.Code == 0, r.Err);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(r.Out)!;
        Assert.Equal(5, summary["frames"]!.GetValue<int>());
        Assert.Equal(33.3, summary["frame_time_ms"]!.GetValue<double>());
        Assert.Equal("[0.3,0.3]", summary["pixel_spacing_mm"]!.ToJsonString());
        Assert.Equal(5, Directory.GetFiles(Path.Combine(outDir, "masks")).Length);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(outDir, "lv_area.csv")).Length);
        Assert.Equal("beat,ed_frame,es_frame,edv_px3,esv_px3,ef_percent,edv_ml,esv_ml",
            File.ReadAllLines(Path.Combine(outDir, "beats.csv"))[0]);
    }

    /// <summary>
    /// A synthetic loop as a cart stores it (scripts/make-dicom-loop-fixture.py: the generator's frames, seed 21,
    /// written by pydicom with 2 mm pixels in its ultrasound region and 20 ms frames, JPEG-compressed by dcmtk),
    /// segmented by the trained fixture model: EF within the ±5 points of the cine-loop EF test, every true ED/ES
    /// within ±2 frames, and LV volumes in mL within 10% of the generator's true masks at the file's pixel size.
    /// </summary>
    [Fact]
    public void EjectionFractionAndVolumesInMillilitresFromARealisticDicomLoop()
    {
        var truth = SyntheticEcho.Video(new SynthOptions { Count = 3, Videos = 1, VideoFrames = 60, Seed = 21 }, 0);
        var outDir = Path.Combine(TestFiles.TempDir(), "seg");
        var r = TestFiles.Cli("segment", "--model", Path.Combine(AppContext.BaseDirectory, "Fixtures", "lv-unet.sculpt"), "--input",
            Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", "synth-loop-jpeg.dcm"), "--out", outDir, "--json");
        Assert.True(r.Code == 0, r.Err);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(r.Out)!;
        Assert.Equal(20, summary["frame_time_ms"]!.GetValue<double>());
        Assert.Equal("[2,2]", summary["pixel_spacing_mm"]!.ToJsonString());
        double ef = summary["ejection_fraction"]!.GetValue<double>();
        Assert.True(Math.Abs(ef - truth.EjectionFraction) <= 5, $"EF {ef:0.0} vs the generator's {truth.EjectionFraction:0.0}");
        var beats = summary["beats"]!.AsArray().Select(b => b!.AsObject()).ToList();
        const double mlPerPx3 = 2.0 * 2.0 * 2.0 / 1000; // (2 mm)³ in mL
        foreach (var (ed, es) in truth.EndDiastole.Zip(truth.EndSystole))
        {
            var beat = beats.SingleOrDefault(b => Math.Abs(b["ed"]!.GetValue<int>() - ed) <= 2 && Math.Abs(b["es"]!.GetValue<int>() - es) <= 2);
            Assert.True(beat is not null, $"true ED {ed} / ES {es} not found in {summary["beats"]!.ToJsonString()}");
            foreach (var (key, trueFrame) in new[] { ("edv", ed), ("esv", es) })
            {
                double ml = beat[key + "_ml"]!.GetValue<double>(), px3 = beat[key + "_px3"]!.GetValue<double>();
                Assert.Equal(px3 * mlPerPx3, ml, 9);
                double trueMl = truth.Volumes[trueFrame] * mlPerPx3;
                Assert.True(Math.Abs(ml - trueMl) <= 0.10 * trueMl, $"{key} {ml:0.0} mL vs the generator's {trueMl:0.0} mL");
            }
        }
    }
}
