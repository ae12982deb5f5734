using System.IO.Compression;
using System.Text;
using Sculpt.Data;
using Sculpt.Import;
using Sculpt.Tests.Fixtures;
using Xunit;
using Xunit.Abstractions;
using static Sculpt.Tests.FuzzTests;

namespace Sculpt.Tests;

/// <summary>
/// The fuzz suite for the readers of videos, volumes, checkpoints and dataset tables: seeded mutations of the
/// real tools' files (Fixtures/inputs, made by scripts/make-input-fixtures.py) and of EchoNet and folder datasets, each case time-boxed,
/// each ending in a load or in one clean line naming the file.
/// </summary>
[Collection("fuzz")]
public class InputFuzzTests(ITestOutputHelper log)
{
    private static string Fixture(string name) => Path.Combine(FuzzTests.InputsDir, name);

    private static byte[] Gzip(byte[] data)
    {
        using var m = new MemoryStream();
        using (var z = new GZipStream(m, CompressionLevel.Fastest)) z.Write(data);
        return m.ToArray();
    }

    private static byte[] Gunzip(byte[] data)
    {
        using var z = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        using var m = new MemoryStream();
        z.CopyTo(m);
        return m.ToArray();
    }

    /// <summary>Text with one field of one line retyped (empty, text, negative, huge, not a number, a stray quote), or lines dropped or doubled.</summary>
    private static byte[] MutateText(byte[] text, Random r, char separator)
    {
        if (r.Next(4) == 0) return Mutate(text, r);
        var lines = Encoding.UTF8.GetString(text).Split('\n').ToList();
        int at = r.Next(lines.Count);
        switch (r.Next(4))
        {
            case 0: lines.RemoveAt(at); break;
            case 1: lines.Insert(at, lines[at]); break;
            default:
            {
                var fields = lines[at].Split(separator);
                int f = r.Next(fields.Length);
                string[] values = ["", "abc", "-1", "0", "1e308", "99999999999999999999", "NaN", "-2147483648", "\"", new string('9', 5000), "../../../etc/passwd", "/dev/zero"];
                // MetaImage fields are "key = values": keep the key, replace what follows the separator
                fields[f] = separator == '=' && f == 0 ? fields[f] : values[r.Next(values.Length)];
                lines[at] = string.Join(separator, fields);
                break;
            }
        }
        return Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }

    [Fact]
    public void VideoVolumeAndCheckpointReadersRefuseMutatedRealFilesCleanly()
    {
        var dir = TestFiles.TempDir();
        var r = Seeded(15);
        var tallies = new List<Tally>();
        void Run(string reader, int cases, string extension, Func<Random, byte[]> mutate, Action<string> read, Action<string>? beside = null)
        {
            var tally = new Tally(reader);
            for (int i = 0; i < cases; i++)
            {
                var caseDir = Directory.CreateDirectory(Path.Combine(dir, $"{tallies.Count}-{i}")).FullName;
                var path = Path.Combine(caseDir, "case" + extension);
                File.WriteAllBytes(path, mutate(r));
                beside?.Invoke(caseDir);
                Case(tally, path, () => read(path), $"{reader} case {i}");
                Directory.Delete(caseDir, true);
            }
            tallies.Add(tally);
            log.WriteLine(tally.ToString());
        }
        var avi = File.ReadAllBytes(Fixture("ffmpeg.avi"));
        Run("AVI (ffmpeg, Motion-JPEG)", 500, ".avi", r => Mutate(avi, r), p =>
        {
            var parsed = Avi.Read(p);
            if (parsed.IsMotionJpeg) Video.DecodeMotionJpeg(parsed, p); // anything else would go to ffmpeg, out of process
        });
        foreach (var dcm in new[] { "us-mono-implicit.dcm", "us-rgb-explicit.dcm", "us-rgb-rle.dcm", "us-mono-jpeg.dcm", "us-rgb-jpeg.dcm" })
        {
            var original = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dicom", dcm));
            Run($"DICOM {dcm} (pydicom/dcmtk)", 150, ".dcm", r => Mutate(original, r), p => Dicom.Read(p));
        }
        var nifti = Gunzip(File.ReadAllBytes(Fixture("nibabel.nii.gz")));
        Run("NIfTI .nii.gz (nibabel)", 300, ".nii.gz", r => r.Next(5) == 0 ? Mutate(Gzip(nifti), r) : Gzip(Mutate(nifti, r)), p => MedicalVolume.Read(p));
        var niftiFloat = File.ReadAllBytes(Fixture("nibabel-float.nii"));
        Run("NIfTI .nii (nibabel, float)", 300, ".nii", r => Mutate(niftiFloat, r), p => MedicalVolume.Read(p));
        var header = File.ReadAllBytes(Fixture("metaimage.mhd"));
        var raw = File.ReadAllBytes(Fixture("metaimage.raw"));
        Run("MetaImage .mhd + .raw", 200, ".mhd", r => MutateText(header, r, '=').Concat("\nElementDataFile = metaimage.raw\n"u8.ToArray()).ToArray(),
            p => MedicalVolume.Read(p), caseDir => File.WriteAllBytes(Path.Combine(caseDir, "metaimage.raw"), r.Next(3) == 0 ? Mutate(raw, r) : raw));
        Run("MetaImage .mhd (header only)", 200, ".mhd", r => MutateText(header, r, '='), p => MedicalVolume.Read(p),
            caseDir => File.WriteAllBytes(Path.Combine(caseDir, "metaimage.raw"), raw));
        foreach (var file in new[] { "state.pt", "state-legacy.pt" })
        {
            var original = File.ReadAllBytes(Fixture(file));
            Run($"torch.save ({file})", 500, ".pt", r => Mutate(original, r), p => PyTorchCheckpoint.StateDict(PyTorchCheckpoint.Read(p), p));
        }
        Assert.All(tallies, t => Assert.True(t.Refused > 0, $"{t.Reader}: no mutation was refused"));
        AssertProcessPeakUnder2GB(log);
    }

    [Fact]
    public void DatasetTablesRefuseMutationsCleanly()
    {
        var root = TestFiles.TempDir();
        var r = Seeded(16);
        var echo = new EchoNetFixture(Path.Combine(root, "echonet"), videos: 3);
        var folder = Path.Combine(root, "folder");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", folder, "--count", "6", "--size", "32", "--seed", "3").Code);
        File.WriteAllText(Path.Combine(folder, SegmentationDataset.ManifestFile),
            "{\"format\": \"png-folder\", \"labels\": [\"background\", \"lv\"], \"channels\": 1, \"pixel_spacing_mm\": 0.3}");
        var ids = Directory.GetFiles(Path.Combine(folder, "images")).Select(Path.GetFileNameWithoutExtension).Order().ToList();
        File.WriteAllText(Path.Combine(folder, SegmentationDataset.SplitFile), "id,split\n" + string.Join("\n", ids.Select((id, i) => $"{id},{(i % 3 == 0 ? "val" : "train")}")) + "\n");
        foreach (var (reader, dataset, file, load) in new (string, string, string, Action<string>)[]
        {
            ("EchoNet FileList.csv", echo.Root, EchoNetDynamic.FileList, d => EchoNetDynamic.Load(d)),
            ("EchoNet VolumeTracings.csv", echo.Root, EchoNetDynamic.VolumeTracings, d => EchoNetDynamic.Load(d)),
            ("folder dataset manifest.json", folder, SegmentationDataset.ManifestFile, d => SegmentationDataset.Load(d)),
            ("folder dataset split.csv", folder, SegmentationDataset.SplitFile, d => SegmentationDataset.Load(d)),
        })
        {
            var path = Path.Combine(dataset, file);
            var original = File.ReadAllBytes(path);
            var tally = new Tally(reader);
            for (int i = 0; i < 200; i++)
            {
                File.WriteAllBytes(path, file.EndsWith(".json") ? (r.Next(3) == 0 ? Mutate(original, r) : MutateJson(original, r)) : MutateText(original, r, ','));
                Case(tally, dataset, () => load(dataset), $"{reader} case {i}");
            }
            File.WriteAllBytes(path, original);
            log.WriteLine(tally.ToString());
            Assert.True(tally.Refused > 0);
        }
        AssertProcessPeakUnder2GB(log);
    }
}
