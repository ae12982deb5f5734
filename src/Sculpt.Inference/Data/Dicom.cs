using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Sculpt.Data;

/// <summary>Physical size of a pixel, from the Sequence of Ultrasound Regions (PS3.3 C.8.5.5), in millimetres.</summary>
public sealed record PixelSpacing(double XMm, double YMm);

/// <summary>A decoded multi-frame ultrasound image: frames (grey or RGB), timing and physical pixel size where the file says.</summary>
public sealed record DicomCine(List<Image8> Frames, double? FrameTimeMs, PixelSpacing? Spacing, string TransferSyntax, string Photometric);

/// <summary>
/// A reader for DICOM Part 10 files (PS3.10) as ultrasound carts write them, built to PS3.5: the file meta group
/// (explicit VR little endian), then the data set in its transfer syntax — implicit or explicit VR little endian,
/// uncompressed, RLE lossless (PS3.5 Annex G) or JPEG baseline (process 1) encapsulated frames (Annex A.4).
/// Photometric interpretations MONOCHROME1/2, RGB, YBR_FULL, YBR_FULL_422 and PALETTE COLOR, 8 bits allocated.
/// Everything else is refused with one line; every length is checked against the bytes present.
/// </summary>
public static class Dicom
{
    public const string ImplicitLittle = "1.2.840.10008.1.2", ExplicitLittle = "1.2.840.10008.1.2.1", Rle = "1.2.840.10008.1.2.5",
        JpegBaseline = "1.2.840.10008.1.2.4.50";
    private static readonly Dictionary<string, string> Unsupported = new()
    {
        ["1.2.840.10008.1.2.2"] = "explicit VR big endian (retired)", ["1.2.840.10008.1.2.1.99"] = "deflated explicit VR little endian",
        ["1.2.840.10008.1.2.4.51"] = "JPEG extended (12-bit)", ["1.2.840.10008.1.2.4.57"] = "JPEG lossless",
        ["1.2.840.10008.1.2.4.70"] = "JPEG lossless (first-order prediction)", ["1.2.840.10008.1.2.4.80"] = "JPEG-LS lossless",
        ["1.2.840.10008.1.2.4.81"] = "JPEG-LS near-lossless", ["1.2.840.10008.1.2.4.90"] = "JPEG 2000 lossless",
        ["1.2.840.10008.1.2.4.91"] = "JPEG 2000", ["1.2.840.10008.1.2.4.100"] = "MPEG-2", ["1.2.840.10008.1.2.4.102"] = "MPEG-4 AVC/H.264",
        ["1.2.840.10008.1.2.4.201"] = "HTJ2K",
    };
    /// <summary>Sequences nest this deep at most (ultrasound files use two levels); deeper is refused, never recursed.</summary>
    public const int MaxNesting = 8;
    public const int MaxFrames = 20_000;

    /// <summary>True when the file has the Part 10 preamble and "DICM" prefix.</summary>
    public static bool IsPart10(ReadOnlySpan<byte> head) => head.Length >= 132 && head[128] == 'D' && head[129] == 'I'
        && head[130] == 'C' && head[131] == 'M';

    /// <summary>A whole file in memory: an uncompressed loop of 200 RGB frames at 800×600 is 288 MB.</summary>
    public const long MaxFileBytes = 1L << 30;

    public static DicomCine Read(string path) => Decode(Common.InputFile.ReadAll(path, "DICOM file", MaxFileBytes), path);

    public static DicomCine Decode(byte[] file, string source)
    {
        if (!IsPart10(file)) throw new InvalidDataException($"{source}: not a DICOM Part 10 file (no DICM prefix at byte 128)");
        var meta = new Dictionary<uint, Element>();
        int at = 132;
        // the meta group is explicit VR little endian whatever the data set uses (PS3.10 7.1)
        while (at + 4 <= file.Length && BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at)) == 0x0002)
        {
            var e = ReadElement(file, ref at, explicitVr: true, source, depth: 0);
            meta[e.Tag] = e;
        }
        string syntax = meta.TryGetValue(0x00020010, out var ts) ? Text(file, ts) :
            throw new InvalidDataException($"{source}: no transfer syntax (0002,0010)");
        if (Unsupported.TryGetValue(syntax, out var name))
            throw new InvalidDataException($"{source}: transfer syntax {name} ({syntax}) is not supported");
        if (syntax is not (ImplicitLittle or ExplicitLittle or Rle or JpegBaseline))
            throw new InvalidDataException($"{source}: unknown transfer syntax {Messages(syntax)}");
        bool explicitVr = syntax != ImplicitLittle;

        var top = new Dictionary<uint, Element>();
        PixelSpacing? spacing = null;
        while (at < file.Length)
        {
            var e = ReadElement(file, ref at, explicitVr, source, depth: 0);
            top[e.Tag] = e;
            if (e.Tag == 0x00186011) spacing = UltrasoundSpacing(file, e, explicitVr, source);
        }

        int rows = UShort(file, top, 0x00280010, source), columns = UShort(file, top, 0x00280011, source);
        int samples = UShort(file, top, 0x00280002, source), bits = UShort(file, top, 0x00280100, source);
        string photometric = top.TryGetValue(0x00280004, out var pi) ? Text(file, pi) :
            throw Missing(source, "(0028,0004) Photometric Interpretation");
        int planar = top.ContainsKey(0x00280006) ? UShort(file, top, 0x00280006, source) : 0;
        int frames = top.TryGetValue(0x00280008, out var nf) ? IntegerString(file, nf, source, "(0028,0008) Number of Frames") : 1;
        if (rows == 0 || columns == 0) throw new InvalidDataException($"{source}: image of {rows}×{columns} pixels");
        InputLimits.CheckPixels(columns, rows, source);
        if (frames < 1 || frames > MaxFrames) throw new InvalidDataException($"{source}: {frames} frames (1 to {MaxFrames:N0} supported)");
        if (photometric == "YBR_FULL_422" && columns % 2 != 0 && syntax is ImplicitLittle or ExplicitLittle)
            throw new InvalidDataException($"{source}: YBR_FULL_422 with an odd number of columns ({columns})");
        if (bits != 8)
            throw new InvalidDataException($"{source}: {bits} bits allocated per sample; only 8 are supported (ultrasound is 8-bit)");
        bool colour = photometric is "RGB" or "YBR_FULL" or "YBR_FULL_422";
        if (!(colour && samples == 3) && !(photometric is "MONOCHROME1" or "MONOCHROME2" or "PALETTE COLOR" && samples == 1))
            throw new InvalidDataException(
                $"{source}: photometric interpretation {Messages(photometric)} with {samples} samples per pixel is not supported");
        long decodedBytes = (long)frames * rows * columns * (colour || photometric == "PALETTE COLOR" ? 3 : 1);
        if (decodedBytes > Video.MaxDecodedBytes)
            throw new InvalidDataException($"{source}: decodes to more than {Video.MaxDecodedBytes:N0} bytes of frames");
        if (!top.TryGetValue(0x7FE00010, out var pixels)) throw Missing(source, "(7FE0,0010) Pixel Data");

        var frameList = new List<Image8>(frames);
        if (syntax is ImplicitLittle or ExplicitLittle)
        {
            if (pixels.Fragments != null)
                throw new InvalidDataException($"{source}: encapsulated pixel data in an uncompressed transfer syntax");
            long frameBytes = photometric == "YBR_FULL_422" ? (long)rows * columns * 2 : (long)rows * columns * samples;
            if (pixels.Length < frameBytes * frames)
                throw new InvalidDataException($"{source}: pixel data holds {pixels.Length:N0} bytes, "
                    + $"{frames} frames of {rows}×{columns}×{samples} need {frameBytes * frames:N0}");
            for (int f = 0; f < frames; f++)
                frameList.Add(Native(file.AsSpan(pixels.Offset + (int)(frameBytes * f), (int)frameBytes), rows, columns, photometric,
                    planar));
        }
        else
        {
            var perFrame = FrameFragments(file, pixels, frames, syntax, source);
            for (int f = 0; f < frames; f++)
            {
                string where = $"{source} frame {f}";
                if (syntax == Rle) frameList.Add(Native(DecodeRle(perFrame[f], rows, columns, samples, where), rows, columns,
                    photometric, planar: 1));
                else
                {
                    var img = Jpeg.Decode(perFrame[f], where);
                    if (img.Width != columns || img.Height != rows)
                        throw new InvalidDataException($"{where}: JPEG of {img.Width}×{img.Height}, the header says {columns}×{rows}");
                    frameList.Add(photometric is "MONOCHROME1" ? Invert(img) : img);
                }
            }
        }
        if (photometric == "PALETTE COLOR") frameList = ApplyPalette(file, top, frameList, source);

        double? frameTime = null;
        if (top.TryGetValue(0x00181063, out var ft)) frameTime = DecimalString(file, ft, source, "(0018,1063) Frame Time");
        else if (top.TryGetValue(0x00180040, out var cr)
            && IntegerString(file, cr, source, "(0018,0040) Cine Rate") is > 0 and var rate) frameTime = 1000.0 / rate;
        if (frameTime is <= 0 or > 10_000) throw new InvalidDataException($"{source}: frame time {frameTime} ms");
        return new DicomCine(frameList, frameTime, spacing, syntax, photometric);
    }

    private sealed record Element(uint Tag, string Vr, int Offset, int Length, List<byte[]>? Fragments = null,
        List<List<Element>>? Items = null);

    private static InvalidDataException Missing(string source, string what) => new($"{source}: required element {what} missing");

    private static string Messages(string s) => Common.Messages.Quote(s);

    private static readonly HashSet<string> LongVrs = new() { "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
        "UV" };

    /// <summary>
    /// One element at <paramref name="at"/>; sequences and encapsulated pixel data read whole, to <see cref="MaxNesting"/> levels.
    /// </summary>
    private static Element ReadElement(byte[] b, ref int at, bool explicitVr, string source, int depth)
    {
        if (depth > MaxNesting) throw new InvalidDataException($"{source}: sequences nested deeper than {MaxNesting} levels at byte {at}");
        Need(b, at, 8, source);
        uint tag = Tag(b, at);
        string vr; uint length;
        if (explicitVr && tag >> 16 != 0xFFFE)
        {
            vr = Encoding.ASCII.GetString(b, at + 4, 2);
            if (!(vr[0] is >= 'A' and <= 'Z' && vr[1] is >= 'A' and <= 'Z'))
                throw new InvalidDataException($"{source}: invalid value representation at byte {at + 4} (tag {TagText(tag)})");
            if (LongVrs.Contains(vr))
            {
                Need(b, at, 12, source);
                length = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 8));
                at += 12;
            }
            else { length = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(at + 6)); at += 8; }
        }
        else
        {
            vr = tag == 0x7FE00010 ? "OB" : tag == 0x00186011 ? "SQ" : "UN";
            length = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 4)); at += 8;
        }
        if (length == 0xFFFFFFFF)
        {
            if (tag == 0x7FE00010) return new Element(tag, vr, at, 0, Fragments: ReadFragments(b, ref at, source));
            // an undefined length is a sequence (SQ, or UN holding implicit VR little endian per PS3.5 6.2.2)
            bool itemsExplicit = explicitVr && vr == "SQ";
            return new Element(tag, "SQ", at, 0, Items: ReadItems(b, ref at, null, itemsExplicit, source, depth + 1));
        }
        if (length > (uint)(b.Length - at))
            throw new InvalidDataException($"{source}: element {TagText(tag)} declares {length:N0} bytes, {b.Length - at:N0} remain");
        int offset = at;
        at += (int)length;
        if (vr == "SQ") { int inner = offset; return new Element(tag, vr, offset, (int)length,
            Items: ReadItems(b, ref inner, offset + (int)length, explicitVr, source, depth + 1)); }
        return new Element(tag, vr, offset, (int)length);
    }

    private static List<List<Element>> ReadItems(byte[] b, ref int at, int? end, bool explicitVr, string source, int depth)
    {
        var items = new List<List<Element>>();
        while (end is null || at < end)
        {
            Need(b, at, 8, source);
            uint tag = Tag(b, at);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 4));
            at += 8;
            if (tag == 0xFFFEE0DD) return items; // sequence delimitation
            if (tag != 0xFFFEE000)
                throw new InvalidDataException($"{source}: expected a sequence item at byte {at - 8}, found {TagText(tag)}");
            var item = new List<Element>();
            if (length == 0xFFFFFFFF)
            {
                while (true)
                {
                    Need(b, at, 8, source);
                    if (BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at)) == 0xE00DFFFE) { at += 8; break; } // item delimitation
                    item.Add(ReadElement(b, ref at, explicitVr, source, depth));
                }
            }
            else
            {
                if (length > (uint)(b.Length - at))
                    throw new InvalidDataException($"{source}: sequence item declares {length:N0} bytes, {b.Length - at:N0} remain");
                int itemEnd = at + (int)length;
                while (at < itemEnd) item.Add(ReadElement(b, ref at, explicitVr, source, depth));
                if (at != itemEnd) throw new InvalidDataException($"{source}: sequence item overruns its length at byte {at}");
            }
            items.Add(item);
        }
        if (at != end) throw new InvalidDataException($"{source}: sequence overruns its length at byte {at}");
        return items;
    }

    /// <summary>Encapsulated pixel data (PS3.5 A.4): the basic offset table item, then fragments, then a sequence delimiter.</summary>
    private static List<byte[]> ReadFragments(byte[] b, ref int at, string source)
    {
        var items = new List<byte[]>();
        while (true)
        {
            Need(b, at, 8, source);
            uint tag = Tag(b, at);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 4));
            at += 8;
            if (tag == 0xFFFEE0DD) return items;
            if (tag != 0xFFFEE000)
                throw new InvalidDataException($"{source}: expected a pixel data fragment at byte {at - 8}, found {TagText(tag)}");
            if (length > (uint)(b.Length - at))
                throw new InvalidDataException($"{source}: pixel data fragment declares {length:N0} bytes, {b.Length - at:N0} remain");
            if (items.Count > MaxFrames * 4) throw new InvalidDataException($"{source}: more than {MaxFrames * 4:N0} pixel data fragments");
            items.Add(b.AsSpan(at, (int)length).ToArray());
            at += (int)length;
        }
    }

    /// <summary>
    /// The bytes of each frame: one fragment per frame when the counts match, else by the basic offset table, else by JPEG end markers.
    /// </summary>
    private static List<byte[]> FrameFragments(byte[] file, Element pixels, int frames, string syntax, string source)
    {
        var items = pixels.Fragments ??
            throw new InvalidDataException($"{source}: pixel data of a compressed transfer syntax is not encapsulated");
        if (items.Count < 2) throw new InvalidDataException($"{source}: encapsulated pixel data without fragments");
        var table = items[0];
        var fragments = items.Skip(1).ToList();
        if (fragments.Count == frames) return fragments;
        if (table.Length == 4 * frames)
        {
            // offsets are from the first byte of the first fragment's item tag; each fragment item adds 8 bytes of header
            var starts = new List<long>(); long position = 0;
            foreach (var f in fragments) { starts.Add(position); position += 8 + f.Length; }
            var result = new List<byte[]>();
            for (int i = 0; i < frames; i++)
            {
                long from = BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(4 * i));
                long to = i + 1 < frames ? BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(4 * (i + 1))) : position;
                int first = starts.IndexOf(from);
                if (first < 0 || to < from)
                    throw new InvalidDataException($"{source}: basic offset table entry {i} ({from}) does not start a fragment");
                var frame = new List<byte>();
                for (int k = first; k < fragments.Count && starts[k] < to; k++) frame.AddRange(fragments[k]);
                result.Add(frame.ToArray());
            }
            return result;
        }
        if (syntax == JpegBaseline)
        {
            // no table: frames end where a fragment ends with EOI (FFD9, possibly followed by one pad byte)
            var result = new List<byte[]>(); var current = new List<byte>();
            foreach (var f in fragments)
            {
                current.AddRange(f);
                int n = f.Length;
                if (n >= 2 && (f[n - 2] == 0xFF && f[n - 1] == 0xD9 || n >= 3 && f[n - 3] == 0xFF && f[n - 2] == 0xD9
                    && f[n - 1] == 0)) { result.Add(current.ToArray()); current.Clear(); }
            }
            if (result.Count == frames) return result;
        }
        throw new InvalidDataException($"{source}: {fragments.Count} pixel data fragments cannot be assigned to {frames} frames");
    }

    /// <summary>PS3.5 Annex G: a 64-byte header of segment offsets, then one PackBits segment per byte plane.</summary>
    private static byte[] DecodeRle(byte[] frame, int rows, int columns, int samples, string source)
    {
        if (frame.Length < 64) throw new InvalidDataException($"{source}: RLE frame shorter than its 64-byte header");
        uint segments = BinaryPrimitives.ReadUInt32LittleEndian(frame);
        if (segments != samples)
            throw new InvalidDataException($"{source}: RLE frame has {segments} segments, {samples} samples of 8 bits need {samples}");
        int plane = rows * columns;
        var output = new byte[plane * samples];
        for (int s = 0; s < samples; s++)
        {
            long start = BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(4 + 4 * s));
            long end = s + 1 < samples ? BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(8 + 4 * s)) : frame.Length;
            if (start < 64 || end > frame.Length || end < start)
                throw new InvalidDataException($"{source}: RLE segment {s} offsets {start}–{end} outside the frame");
            int o = s * plane, limit = o + plane;
            for (long i = start; i < end && o < limit;)
            {
                sbyte n = (sbyte)frame[i++];
                if (n >= 0)
                {
                    int count = n + 1;
                    if (i + count > end || o + count > limit)
                        throw new InvalidDataException($"{source}: RLE segment {s} literal run past its end");
                    Array.Copy(frame, i, output, o, count); i += count; o += count;
                }
                else if (n != -128)
                {
                    int count = 1 - n;
                    if (i >= end || o + count > limit) throw new InvalidDataException($"{source}: RLE segment {s} repeat run past its end");
                    output.AsSpan(o, count).Fill(frame[i++]); o += count;
                }
            }
            if (o != limit)
                throw new InvalidDataException($"{source}: RLE segment {s} decodes to {o - s * plane} bytes, the frame needs {plane}");
        }
        return output;
    }

    /// <summary>Uncompressed or RLE-decoded samples to an Image8: planar to interleaved, YBR to RGB, MONOCHROME1 inverted.</summary>
    private static Image8 Native(ReadOnlySpan<byte> data, int rows, int columns, string photometric, int planar)
    {
        int n = rows * columns;
        if (photometric is "MONOCHROME2" or "PALETTE COLOR") return new Image8(columns, rows, 1, data[..n].ToArray());
        if (photometric == "MONOCHROME1")
        {
            var inverted = new byte[n];
            for (int i = 0; i < n; i++) inverted[i] = (byte)(255 - data[i]);
            return new Image8(columns, rows, 1, inverted);
        }
        var rgb = new byte[n * 3];
        if (photometric == "YBR_FULL_422")
        {
            // pairs of pixels share chroma: Y0 Y1 Cb Cr (PS3.3 C.7.6.3.1.2)
            for (int p = 0; p + 1 < n; p += 2)
            {
                int q = p * 2;
                byte cb = data[q + 2], cr = data[q + 3];
                Ycc(data[q], cb, cr, rgb.AsSpan(p * 3));
                Ycc(data[q + 1], cb, cr, rgb.AsSpan((p + 1) * 3));
            }
            return new Image8(columns, rows, 3, rgb);
        }
        for (int i = 0; i < n; i++)
        {
            byte a = planar == 1 ? data[i] : data[3 * i], b = planar == 1 ? data[n + i] : data[3 * i + 1], c = planar == 1
                ? data[2 * n + i] : data[3 * i + 2];
            if (photometric == "RGB") { rgb[3 * i] = a; rgb[3 * i + 1] = b; rgb[3 * i + 2] = c; }
            else Ycc(a, b, c, rgb.AsSpan(3 * i));
        }
        return new Image8(columns, rows, 3, rgb);
    }

    /// <summary>Full-range YCbCr to RGB (PS3.3 C.7.6.3.1.2, the ITU-R BT.601 matrix without head- and foot-room).</summary>
    private static void Ycc(byte y, byte cb, byte cr, Span<byte> rgb)
    {
        double b = cb - 128.0, r = cr - 128.0;
        rgb[0] = Clamp(y + 1.402 * r);
        rgb[1] = Clamp(y - 0.344136 * b - 0.714136 * r);
        rgb[2] = Clamp(y + 1.772 * b);
    }

    private static byte Clamp(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    private static Image8 Invert(Image8 img) => img with { Pixels = img.Pixels.Select(p => (byte)(255 - p)).ToArray() };

    /// <summary>PALETTE COLOR: each index through the red, green and blue lookup tables (PS3.3 C.7.6.3.1.5), 8- or 16-bit.</summary>
    private static List<Image8> ApplyPalette(byte[] file, Dictionary<uint, Element> top, List<Image8> frames, string source)
    {
        var tables = new byte[3][];
        for (int c = 0; c < 3; c++)
        {
            if (!top.TryGetValue(0x00281101u + (uint)c, out var d) || d.Length != 6)
                throw Missing(source, $"(0028,{0x1101 + c:X4}) palette descriptor");
            int entries = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(d.Offset)),
                first = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(d.Offset + 2));
            int bits = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(d.Offset + 4));
            if (entries == 0) entries = 65536;
            if (!top.TryGetValue(0x00281201u + (uint)c, out var lut)) throw Missing(source, $"(0028,{0x1201 + c:X4}) palette data");
            int bytesPer = lut.Length >= 2 * entries ? 2 : 1;
            if (lut.Length < bytesPer * entries)
                throw new InvalidDataException($"{source}: palette data of {lut.Length} bytes for {entries} entries");
            var table = new byte[256];
            for (int i = 0; i < 256; i++)
            {
                int k = Math.Clamp(i - first, 0, entries - 1);
                int v = bytesPer == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(lut.Offset + 2 * k)) : file[lut.Offset + k];
                table[i] = (byte)(bytesPer == 2 && bits > 8 ? v >> (bits - 8) : v);
            }
            tables[c] = table;
        }
        return frames.Select(f =>
        {
            var rgb = new byte[f.Pixels.Length * 3];
            for (int i = 0; i < f.Pixels.Length; i++) for (int c = 0; c < 3; c++) rgb[3 * i + c] = tables[c][f.Pixels[i]];
            return new Image8(f.Width, f.Height, 3, rgb);
        }).ToList();
    }

    /// <summary>Physical deltas of the first 2D region whose units are centimetres (PS3.3 C.8.5.5.1.15: 3 = cm), in mm.</summary>
    private static PixelSpacing? UltrasoundSpacing(byte[] file, Element sequence, bool explicitVr, string source)
    {
        foreach (var item in sequence.Items ?? new())
        {
            var e = item.ToDictionary(x => x.Tag, x => x);
            if (!e.TryGetValue(0x00186024, out var ux) || !e.TryGetValue(0x0018602C, out var dx)
                || !e.TryGetValue(0x0018602E, out var dy)) continue;
            var uy = e.GetValueOrDefault(0x00186026u);
            if (ux.Length < 2 || dx.Length < 8 || dy.Length < 8)
                throw new InvalidDataException($"{source}: malformed ultrasound region (units or deltas too short)");
            int unitsX = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(ux.Offset)), unitsY = uy is { Length: >= 2 }
                ? BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(uy.Offset)) : unitsX;
            if (unitsX != 3 || unitsY != 3) continue;
            double x = BinaryPrimitives.ReadDoubleLittleEndian(file.AsSpan(dx.Offset)) * 10,
                y = BinaryPrimitives.ReadDoubleLittleEndian(file.AsSpan(dy.Offset)) * 10;
            if (!(x > 0 && x < 100 && y > 0 && y < 100))
                throw new InvalidDataException($"{source}: ultrasound region pixel size {x}×{y} mm");
            return new PixelSpacing(Math.Abs(x), Math.Abs(y));
        }
        return null;
    }

    private static void Need(byte[] b, int at, int bytes, string source)
    {
        if (at < 0 || bytes > b.Length - at)
            throw new InvalidDataException($"{source}: truncated at byte {at} (needs {bytes} more, {Math.Max(0, b.Length - at)} remain)");
    }

    /// <summary>A tag as group (high half) and element, each little endian.</summary>
    private static uint Tag(byte[] b, int at) =>
        (uint)BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(at)) << 16 | BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(at + 2));

    private static string TagText(uint tag) => $"({tag >> 16:X4},{tag & 0xFFFF:X4})";

    private static string Text(byte[] b, Element e) => Encoding.ASCII.GetString(b, e.Offset, e.Length).TrimEnd('\0', ' ');

    private static int UShort(byte[] b, Dictionary<uint, Element> top, uint tag, string source)
    {
        if (!top.TryGetValue(tag, out var e)) throw Missing(source, TagText(tag));
        if (e.Length != 2) throw new InvalidDataException($"{source}: {TagText(tag)} has {e.Length} bytes, an unsigned short needs 2");
        return BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(e.Offset));
    }

    private static int IntegerString(byte[] b, Element e, string source, string what) =>
        int.TryParse(Text(b, e).Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v
            : throw new InvalidDataException($"{source}: {what} is not an integer ({Messages(Text(b, e))})");

    private static double DecimalString(byte[] b, Element e, string source, string what) =>
        double.TryParse(Text(b, e).Trim().Split('\\')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
            && double.IsFinite(v) ? v
            : throw new InvalidDataException($"{source}: {what} is not a decimal ({Messages(Text(b, e))})");
}
