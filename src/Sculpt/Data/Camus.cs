using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text.RegularExpressions;

namespace Sculpt.Data;

/// <summary>A 2-D image read from a medical volume file, with its pixel spacing in mm (x = column, y = row).</summary>
public sealed record MedicalImage(int Width, int Height, float[] Pixels, double SpacingX, double SpacingY);

/// <summary>
/// Reader for CAMUS (Leclerc et al., IEEE TMI 2019): both the NIfTI release (patientNNNN_{2CH,4CH}_{ED,ES}[_gt].nii.gz)
/// and the older MetaImage release (.mhd + .raw). Labels: 0 background, 1 LV cavity, 2 myocardium, 3 left atrium.
/// Images are padded to a square (so the pixel spacing stays isotropic) and resized to the model input; the
/// spacing is kept so HD95 is reported in mm. Splits follow database_split/subgroup_*.txt when present, else a
/// stable hash of the patient (never of the image, so a patient's views never straddle splits).
/// </summary>
public static class Camus
{
    public static readonly string[] Labels = { "background", "lv", "myocardium", "la" };
    private static readonly Regex Name = new(@"^(patient\d+)_(2CH|4CH)_(ED|ES)(_gt)?\.(mhd|nii|nii\.gz)$", RegexOptions.IgnoreCase);

    private static IEnumerable<string> Candidates(string dir) =>
        Directory.EnumerateFiles(dir, "patient*", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 3 })
            .Where(f => Name.IsMatch(Path.GetFileName(f)));

    public static bool IsLayout(string dir) => Candidates(dir).Any();

    public static SegmentationDataset Load(string dir, int? height = null, int? width = null, bool lenient = false,
        Action<int, int>? progress = null)
    {
        var warnings = new List<string>();
        var files = Candidates(dir).OrderBy(f => f, StringComparer.Ordinal).ToList();
        var images = files.Where(f => !Name.Match(Path.GetFileName(f)).Groups[4].Success).ToList();
        var splits = ReadOfficialSplits(dir);
        var samples = new List<Sample>();
        int noTruth = 0;
        int size = height ?? width ?? 256;
        if ((height ?? size) != (width ?? size)) throw new DatasetException($"{dir}: CAMUS images are resized to a square model input, asked for {width}×{height}");
        SegmentationDataset.CheckMemory(dir, images.Count, 1, size, size);
        int read = 0;
        foreach (var imagePath in images)
        {
            progress?.Invoke(read++, images.Count);
            var m = Name.Match(Path.GetFileName(imagePath));
            string patient = m.Groups[1].Value, view = m.Groups[2].Value.ToUpperInvariant(), phase = m.Groups[3].Value.ToUpperInvariant(), ext = m.Groups[5].Value;
            var truthPath = Path.Combine(Path.GetDirectoryName(imagePath)!, $"{patient}_{m.Groups[2].Value}_{m.Groups[3].Value}_gt.{ext}");
            if (!File.Exists(truthPath)) { noTruth++; continue; }
            try
            {
                var image = MedicalVolume.Read(imagePath);
                var truth = MedicalVolume.Read(truthPath);
                if (image.Width != truth.Width || image.Height != truth.Height)
                    throw new InvalidDataException($"{truthPath}: size {truth.Width}×{truth.Height} differs from the image's {image.Width}×{image.Height}");
                var labels = new byte[truth.Pixels.Length];
                for (int i = 0; i < labels.Length; i++)
                {
                    float v = truth.Pixels[i];
                    if (v < 0 || v > 3 || v != MathF.Round(v)) throw new InvalidDataException($"{truthPath}: label {v} at pixel ({i % truth.Width}, {i / truth.Width}) is not 0–3");
                    labels[i] = (byte)v;
                }
                // anisotropic pixels are resampled to square ones first (the finer spacing), so that padding to a
                // square and resizing keep one spacing for both axes and HD95 in mm stays exact
                (image, labels) = Isotropic(image, labels, imagePath);
                // pad to a square around the image (zeros), then resize: isotropic spacing survives
                int side = Math.Max(image.Width, image.Height);
                InputLimits.CheckPixels(side, side, imagePath, "image padded to a square"); // a very elongated image after resampling
                int ox = (side - image.Width) / 2, oy = (side - image.Height) / 2;
                float max = Math.Max(1, image.Pixels.Max());
                float scale = max > 255 ? 1f / max : 1f / 255; // CAMUS images are 8-bit; anything else is scaled by its maximum
                var squareImage = new float[side * side];
                var squareMask = new byte[side * side];
                for (int y = 0; y < image.Height; y++)
                    for (int x = 0; x < image.Width; x++)
                    {
                        squareImage[(y + oy) * side + x + ox] = Math.Clamp(image.Pixels[y * image.Width + x] * scale, 0, 1);
                        squareMask[(y + oy) * side + x + ox] = labels[y * image.Width + x];
                    }
                var planes = ImageIO.ResizeBilinear(squareImage, 1, side, side, size, size);
                var mask = ImageIO.ResizeNearest(squareMask, side, side, size, size);
                double spacing = image.SpacingX * side / size;
                string split = splits.TryGetValue(patient, out var s) ? s : SegmentationDataset.DefaultSplit(patient);
                samples.Add(new Sample($"{patient}_{view}_{phase}", planes, mask, split, spacing, phase));
            }
            catch (InvalidDataException e)
            {
                if (!lenient) throw new DatasetException(e.Message);
                warnings.Add(e.Message);
            }
        }
        if (noTruth > 0) warnings.Insert(0, $"{dir}: {noTruth} image(s) without a _gt mask skipped");
        if (samples.Count == 0) throw new DatasetException($"{dir}: no CAMUS image with a _gt mask could be read");
        return new SegmentationDataset
        {
            Source = dir, Labels = Labels.ToList(), Channels = 1, Height = size, Width = size, Samples = samples, Format = "camus",
            OriginalHeight = size, OriginalWidth = size, Warnings = warnings,
        };
    }

    private static (MedicalImage, byte[]) Isotropic(MedicalImage image, byte[] labels, string source)
    {
        if (Math.Abs(image.SpacingX - image.SpacingY) <= 1e-6 * Math.Max(image.SpacingX, image.SpacingY)) return (image, labels);
        double s = Math.Min(image.SpacingX, image.SpacingY);
        double wd = Math.Round(image.Width * image.SpacingX / s), hd = Math.Round(image.Height * image.SpacingY / s);
        // a tiny spacing on one axis would resample to gigapixels (and the image is padded to a square after)
        if (!(Math.Max(wd, hd) * Math.Max(wd, hd) <= InputLimits.MaxImagePixels))
            throw new InvalidDataException($"{source}: pixel spacing {image.SpacingX}×{image.SpacingY} mm would resample to {wd}×{hd} pixels");
        int w = Math.Max(1, (int)wd), h = Math.Max(1, (int)hd);
        var pixels = ImageIO.ResizeBilinear(image.Pixels, 1, image.Height, image.Width, h, w);
        return (new MedicalImage(w, h, pixels, s, s), ImageIO.ResizeNearest(labels, image.Height, image.Width, h, w));
    }

    /// <summary>CAMUS's database_split/subgroup_{training,validation,testing}.txt: one patient per line.</summary>
    private static Dictionary<string, string> ReadOfficialSplits(string dir)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var f in Directory.EnumerateFiles(dir, "subgroup_*.txt", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 2 }))
        {
            string? split = Path.GetFileNameWithoutExtension(f).ToLowerInvariant() switch { "subgroup_training" => "train", "subgroup_validation" => "val", "subgroup_testing" => "test", _ => null };
            if (split is null) continue;
            foreach (var line in Common.InputFile.ReadLines(f, "split list").Select(l => l.Trim()).Where(l => l.Length > 0)) result[line] = split;
        }
        return result;
    }
}

/// <summary>2-D images from NIfTI-1 (.nii, .nii.gz) and MetaImage (.mhd + raw, .mha) files.</summary>
public static class MedicalVolume
{
    public static MedicalImage Read(string path)
    {
        if (path.EndsWith(".mhd", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".mha", StringComparison.OrdinalIgnoreCase)) return ReadMetaImage(path);
        if (path.EndsWith(".nii", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".nii.gz", StringComparison.OrdinalIgnoreCase)) return ReadNifti(path);
        throw new InvalidDataException($"{path}: not a NIfTI or MetaImage file");
    }

    public static MedicalImage ReadNifti(string path)
    {
        byte[] b;
        try
        {
            var raw = InputLimits.ReadFile(path, "NIfTI file");
            b = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
                ? InputLimits.ReadBounded(new GZipStream(new MemoryStream(raw), CompressionMode.Decompress), path) : raw;
        }
        catch (InvalidDataException e) when (e.Message.StartsWith(path)) { throw; }
        catch (Exception e) when (e is InvalidDataException or IOException) { throw new InvalidDataException($"{path}: truncated or corrupt gzip stream ({e.Message})"); }
        if (b.Length < 348) throw new InvalidDataException($"{path}: truncated NIfTI header ({b.Length} of 348 bytes)");
        bool little = BinaryPrimitives.ReadInt32LittleEndian(b) == 348;
        if (!little && BinaryPrimitives.ReadInt32BigEndian(b) != 348) throw new InvalidDataException($"{path}: not a NIfTI-1 file (sizeof_hdr is not 348)");
        short I16(int at) => little ? BinaryPrimitives.ReadInt16LittleEndian(b.AsSpan(at)) : BinaryPrimitives.ReadInt16BigEndian(b.AsSpan(at));
        float F32(int at) => little ? BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(at)) : BinaryPrimitives.ReadSingleBigEndian(b.AsSpan(at));
        int ndim = I16(40);
        if (ndim < 2 || ndim > 7) throw new InvalidDataException($"{path}: NIfTI dim[0] = {ndim}");
        int nx = I16(42), ny = I16(44);
        InputLimits.CheckPixels(nx, ny, path);
        for (int d = 3; d <= ndim; d++) if (I16(40 + 2 * d) > 1) throw new InvalidDataException($"{path}: a 2-D image was expected, dimension {d} has {I16(40 + 2 * d)} entries");
        short datatype = I16(70);
        double sx = Math.Abs(F32(80)), sy = Math.Abs(F32(84));
        float voxOffset = F32(108);
        if (!(voxOffset >= 0 && voxOffset < b.Length)) throw new InvalidDataException($"{path}: NIfTI vox_offset {voxOffset} lies outside the file");
        int offset = (int)voxOffset;
        float slope = F32(112), inter = F32(116);
        string magic = System.Text.Encoding.ASCII.GetString(b, 344, 3);
        if (magic is not ("n+1" or "ni1")) throw new InvalidDataException($"{path}: NIfTI magic is '{Common.Messages.Quote(magic)}'");
        if (magic == "ni1") throw new InvalidDataException($"{path}: a two-file NIfTI (.hdr/.img) pair is not supported; convert it to .nii");
        var pixels = Decode(b, Math.Max(offset, 352), nx * ny, datatype switch
        {
            2 => "MET_UCHAR", 256 => "MET_CHAR", 4 => "MET_SHORT", 512 => "MET_USHORT", 8 => "MET_INT", 768 => "MET_UINT", 16 => "MET_FLOAT", 64 => "MET_DOUBLE",
            _ => throw new InvalidDataException($"{path}: NIfTI datatype {datatype} is not supported"),
        }, !little, path);
        if (slope != 0 && float.IsFinite(slope) && (slope != 1 || inter != 0))
            for (int i = 0; i < pixels.Length; i++) pixels[i] = pixels[i] * slope + inter;
        return new MedicalImage(nx, ny, pixels, sx > 0 ? sx : 1, sy > 0 ? sy : 1);
    }

    public static MedicalImage ReadMetaImage(string path)
    {
        var all = InputLimits.ReadFile(path, "MetaImage file");
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        int at = 0, dataStart = -1;
        while (at < all.Length)
        {
            int end = Array.IndexOf(all, (byte)'\n', at);
            if (end < 0) end = all.Length;
            var line = System.Text.Encoding.ASCII.GetString(all, at, end - at).Trim();
            at = end + 1;
            int eq = line.IndexOf('=');
            if (eq < 0) continue;
            var key = line[..eq].Trim();
            fields[key] = line[(eq + 1)..].Trim();
            if (key.Equals("ElementDataFile", StringComparison.OrdinalIgnoreCase)) { dataStart = at; break; } // always the last header field
        }
        string Field(string k) => fields.TryGetValue(k, out var v) ? v : throw new InvalidDataException($"{path}: MetaImage header lacks {k}");
        long Number(string text, string key) =>
            long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : throw new InvalidDataException($"{path}: MetaImage {key} '{Common.Messages.Quote(text)}' is not an integer");
        var dims = Field("DimSize").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => Number(v, "DimSize")).ToArray();
        if (dims.Length < 2 || dims.Skip(2).Any(d => d != 1)) throw new InvalidDataException($"{path}: a 2-D image was expected, DimSize = {Common.Messages.Quote(Field("DimSize"))}");
        InputLimits.CheckPixels(dims[0], dims[1], path);
        var spacingText = fields.GetValueOrDefault("ElementSpacing") ?? fields.GetValueOrDefault("ElementSize") ?? "1 1";
        var spacing = spacingText.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d > 0 && double.IsFinite(d) ? d
                : throw new InvalidDataException($"{path}: MetaImage ElementSpacing '{Common.Messages.Quote(spacingText)}' is not a list of positive numbers")).ToArray();
        if (fields.TryGetValue("ElementNumberOfChannels", out var ch) && ch != "1") throw new InvalidDataException($"{path}: {Common.Messages.Quote(ch)}-channel MetaImage is not supported");
        bool msb = (fields.GetValueOrDefault("BinaryDataByteOrderMSB") ?? fields.GetValueOrDefault("ElementByteOrderMSB") ?? "False").Equals("True", StringComparison.OrdinalIgnoreCase);
        bool compressed = (fields.GetValueOrDefault("CompressedData") ?? "False").Equals("True", StringComparison.OrdinalIgnoreCase);
        var dataFile = Field("ElementDataFile");
        byte[] data;
        if (dataFile.Equals("LOCAL", StringComparison.OrdinalIgnoreCase)) data = all[dataStart..];
        else
        {
            // the data file must lie beside the header, inside the dataset: not ../../etc/passwd, not /dev/zero
            if (dataFile.Length == 0 || dataFile.IndexOfAny(Path.GetInvalidPathChars()) >= 0 || dataFile.Any(char.IsControl))
                throw new InvalidDataException($"{path}: ElementDataFile '{Common.Messages.Quote(dataFile)}' is not a file name");
            var folder = Path.GetFullPath(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var rawPath = Path.GetFullPath(Path.Combine(folder, dataFile));
            if (Path.IsPathRooted(dataFile) || !rawPath.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new InvalidDataException($"{path}: ElementDataFile '{Common.Messages.Quote(dataFile)}' lies outside the header's folder");
            if (!File.Exists(rawPath)) throw new InvalidDataException($"{path}: data file {Common.Messages.Quote(rawPath, 300)} not found");
            try { data = InputLimits.ReadFile(rawPath, "MetaImage data file"); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{path}: data file {e.Message}"); } // both files named
        }
        if (compressed)
        {
            try { data = InputLimits.ReadBounded(new ZLibStream(new MemoryStream(data), CompressionMode.Decompress), path); }
            catch (InvalidDataException e) when (!e.Message.StartsWith(path)) { throw new InvalidDataException($"{path}: corrupt compressed data ({e.Message})"); }
        }
        int headerSize = int.TryParse(fields.GetValueOrDefault("HeaderSize"), out var hs) ? hs : 0;
        int count = (int)(dims[0] * dims[1]);
        if (headerSize == -1) headerSize = data.Length - count * ElementSize(Field("ElementType"), path); // -1: data are the file's last bytes
        var pixels = Decode(data, headerSize, count, Field("ElementType"), msb, path);
        return new MedicalImage((int)dims[0], (int)dims[1], pixels, spacing.Length > 0 ? spacing[0] : 1, spacing.Length > 1 ? spacing[1] : 1);
    }

    private static int ElementSize(string type, string path) => type.ToUpperInvariant() switch
    {
        "MET_UCHAR" or "MET_CHAR" => 1, "MET_SHORT" or "MET_USHORT" => 2, "MET_INT" or "MET_UINT" or "MET_FLOAT" => 4, "MET_DOUBLE" => 8,
        _ => throw new InvalidDataException($"{path}: element type {Common.Messages.Quote(type)} is not supported"),
    };

    private static float[] Decode(byte[] b, int offset, int count, string type, bool bigEndian, string path)
    {
        int size = ElementSize(type, path);
        if (offset < 0 || (long)offset + (long)count * size > b.Length)
            throw new InvalidDataException($"{path}: truncated pixel data (needs {(long)count * size} bytes from byte {offset}, file has {b.Length})");
        var px = new float[count];
        var span = b.AsSpan(offset);
        for (int i = 0; i < count; i++)
        {
            var e = span.Slice(i * size, size);
            px[i] = type.ToUpperInvariant() switch
            {
                "MET_UCHAR" => e[0],
                "MET_CHAR" => (sbyte)e[0],
                "MET_SHORT" => bigEndian ? BinaryPrimitives.ReadInt16BigEndian(e) : BinaryPrimitives.ReadInt16LittleEndian(e),
                "MET_USHORT" => bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(e) : BinaryPrimitives.ReadUInt16LittleEndian(e),
                "MET_INT" => bigEndian ? BinaryPrimitives.ReadInt32BigEndian(e) : BinaryPrimitives.ReadInt32LittleEndian(e),
                "MET_UINT" => bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(e) : BinaryPrimitives.ReadUInt32LittleEndian(e),
                "MET_FLOAT" => bigEndian ? BinaryPrimitives.ReadSingleBigEndian(e) : BinaryPrimitives.ReadSingleLittleEndian(e),
                _ => (float)(bigEndian ? BinaryPrimitives.ReadDoubleBigEndian(e) : BinaryPrimitives.ReadDoubleLittleEndian(e)),
            };
        }
        return px;
    }
}
