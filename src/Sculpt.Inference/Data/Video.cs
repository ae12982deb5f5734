using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;

namespace Sculpt.Data;

/// <summary>
/// Video frames as images. Motion-JPEG AVIs (what EchoNet-Dynamic ships) decode in-process, so they need
/// nothing installed; any other container or codec goes through FFmpeg (Debian's ffmpeg package).
/// </summary>
public static class Video
{
    /// <summary>All decoded frames of one video together (an EchoNet loop of 200 frames at 112×112 RGB is 7.5 MB).</summary>
    public const long MaxDecodedBytes = 2L << 30;

    public static List<Image8> ReadFrames(string path)
    {
        var head = Common.InputFile.ReadHead(path, "video", 132);
        if (Dicom.IsPart10(head)) return Dicom.Read(path).Frames;
        if (Encoding.ASCII.GetString(head, 0, 4) == "RIFF" && Encoding.ASCII.GetString(head, 8, 4) == "AVI ")
        {
            var avi = Avi.Read(path);
            if (avi.IsMotionJpeg) return DecodeMotionJpeg(avi, path);
        }
        return ReadWithFfmpeg(path);
    }

    /// <summary>The frames of a Motion-JPEG AVI, decoded in-process.</summary>
    public static List<Image8> DecodeMotionJpeg(Avi avi, string path) =>
        Bounded(avi.Frames.Select((jpeg, i) => Jpeg.Decode(jpeg, $"{path} frame {i}")), path);

    /// <summary>Frames decoded one by one, stopped once they pass <see cref="MaxDecodedBytes"/>: a loop of many large frames must not exhaust memory.</summary>
    private static List<Image8> Bounded(IEnumerable<Image8> decode, string path)
    {
        var frames = new List<Image8>();
        long decoded = 0;
        foreach (var frame in decode)
        {
            decoded += frame.Pixels.Length;
            if (decoded > MaxDecodedBytes) throw new InvalidDataException($"{path}: decodes to more than {MaxDecodedBytes:N0} bytes of frames");
            frames.Add(frame);
        }
        return frames;
    }

    /// <summary>Decodes any video FFmpeg understands to RGB frames.</summary>
    public static List<Image8> ReadWithFfmpeg(string path)
    {
        using var scratch = new Common.TempFolder("sculpt-frames-");
        var psi = new ProcessStartInfo("ffmpeg", new[] { "-v", "error", "-i", path, "-frames:v", "20000", Path.Combine(scratch.Path, "frame_%05d.png") })
        {
            RedirectStandardError = true, RedirectStandardOutput = true,
        };
        Process? p;
        try { p = Process.Start(psi); }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidDataException($"{path}: this video is not Motion-JPEG AVI; decoding it needs FFmpeg (apt-get install ffmpeg), which is not installed");
        }
        var err = p!.StandardError.ReadToEnd();
        p.WaitForExit();
        var files = Directory.GetFiles(scratch.Path, "*.png").OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (p.ExitCode != 0 || files.Count == 0)
            throw new InvalidDataException($"{path}: unreadable video ({Common.Messages.Quote(err.Split('\n').FirstOrDefault(l => l.Length > 0)?.Trim() ?? $"ffmpeg exit code {p.ExitCode}", 200)})");
        return Bounded(files.Select(ImageIO.Read), path);
    }
}

/// <summary>The parts of an AVI (RIFF) file a reader needs: stream format and the video stream's frame chunks.</summary>
public sealed record Avi(int Width, int Height, string Codec, double Fps, List<byte[]> Frames)
{
    public bool IsMotionJpeg => Codec is "MJPG" or "mjpg" or "AVDJ" or "JPEG" or "jpeg" or "dmb1";

    /// <summary>
    /// Walks the RIFF tree: hdrl (avih, strl/strh/strf), movi (frame chunks, possibly inside LIST rec),
    /// and OpenDML RIFF AVIX extensions; JUNK and unknown chunks are skipped and odd chunk sizes padded, per
    /// the AVI specification. Frames are the first video stream's '##dc'/'##db' chunks in file order.
    /// </summary>
    public static Avi Read(string path)
    {
        var b = InputLimits.ReadFile(path, "video");
        int width = 0, height = 0, videoStream = -1, streamIndex = -1;
        string codec = "";
        double fps = 0;
        var frames = new List<byte[]>();
        string Tag(int at) => Encoding.ASCII.GetString(b, at, 4);
        uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at));

        void Walk(int start, int end, string parentList)
        {
            int at = start;
            while (at + 8 <= end)
            {
                string id = Tag(at);
                long size = U32(at + 4);
                int body = at + 8;
                if (body + size > b.Length) throw new InvalidDataException($"{path}: truncated AVI ('{Common.Messages.Quote(id)}' chunk at byte {at} runs past the end of the file)");
                if (id is "RIFF" or "LIST")
                {
                    if (size < 4) throw new InvalidDataException($"{path}: malformed AVI ('{Common.Messages.Quote(id)}' of {size} bytes at byte {at})");
                    string type = Tag(body);
                    if (type == "strl") streamIndex++;
                    Walk(body + 4, body + (int)size, type);
                }
                else if (id == "strh" && size >= 36)
                {
                    string fccType = Tag(body);
                    if (fccType == "vids" && videoStream < 0)
                    {
                        videoStream = streamIndex;
                        codec = Tag(body + 4).TrimEnd('\0', ' ');
                        uint scale = U32(body + 20), rate = U32(body + 24);
                        if (scale > 0) fps = (double)rate / scale;
                    }
                }
                else if (id == "strf" && streamIndex == videoStream && size >= 20 && width == 0)
                {
                    width = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(body + 4));
                    height = (int)Math.Min(int.MaxValue, Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(body + 8)))); // bottom-up when negative
                    string compression = Tag(body + 16).TrimEnd('\0', ' ');
                    if (compression.Length > 0 && compression.Any(char.IsLetter)) codec = compression;
                }
                else if (parentList is "movi" or "rec " && id.Length == 4 && char.IsDigit(id[0]) && char.IsDigit(id[1]) && (id[2..] is "dc" or "db"))
                {
                    if (int.Parse(id[..2], System.Globalization.CultureInfo.InvariantCulture) == Math.Max(videoStream, 0) && size > 0) frames.Add(b.AsSpan(body, (int)size).ToArray());
                }
                at = body + (int)size + (int)(size & 1);
            }
        }

        if (b.Length < 12 || Tag(0) != "RIFF" || Tag(8) != "AVI ") throw new InvalidDataException($"{path}: not an AVI file");
        Walk(0, b.Length, "");
        if (videoStream < 0) throw new InvalidDataException($"{path}: AVI has no video stream");
        if (frames.Count == 0) throw new InvalidDataException($"{path}: AVI holds no video frames");
        return new Avi(width, height, codec, fps, frames);
    }
}

/// <summary>JPEG frames from Motion-JPEG streams and DICOM JPEG Baseline pixel data.</summary>
public static class Jpeg
{
    /// <summary>
    /// Motion-JPEG frames may omit their Huffman tables (AVI1/OpenDML MJPEG): a decoder must then use the
    /// standard tables of ITU-T T.81 Annex K.3, which are inserted here before the first SOS marker.
    /// </summary>
    public static Image8 Decode(byte[] jpeg, string source)
    {
        if (jpeg.Length < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8) throw new InvalidDataException($"{source}: not a JPEG frame");
        var complete = HasHuffmanTables(jpeg) ? jpeg : WithStandardHuffmanTables(jpeg, source);
        // sequential frames decode as IJG's libjpeg decodes them (dcmtk, FFmpeg); other processes through the image decoder
        return BaselineJpeg.IsSequentialHuffman(complete) ? BaselineJpeg.Decode(complete, source) : ImageIO.Decode(complete, source);
    }

    public static bool HasHuffmanTables(byte[] jpeg) => Markers(jpeg).Any(m => m.Marker == 0xC4);

    private static IEnumerable<(byte Marker, int Offset)> Markers(byte[] j)
    {
        int at = 2;
        while (at + 4 <= j.Length && j[at] == 0xFF)
        {
            byte marker = j[at + 1];
            if (marker == 0xFF) { at++; continue; } // fill byte
            yield return (marker, at);
            if (marker == 0xDA || marker == 0xD9) yield break; // entropy-coded data follows SOS
            at += 2 + (j[at + 2] << 8 | j[at + 3]);
        }
    }

    public static byte[] WithStandardHuffmanTables(byte[] jpeg, string source)
    {
        int sos = Markers(jpeg).Where(m => m.Marker == 0xDA).Select(m => m.Offset).DefaultIfEmpty(-1).First();
        if (sos < 0) throw new InvalidDataException($"{source}: JPEG frame has no start-of-scan marker");
        return jpeg[..sos].Concat(StandardDhtSegment.Value).Concat(jpeg[sos..]).ToArray();
    }

    private static byte[] Table(byte classAndId, byte[] counts, byte[] values) => new[] { classAndId }.Concat(counts).Concat(values).ToArray();

    /// <summary>ITU-T T.81 Annex K.3 tables K.3–K.6 in one DHT segment.</summary>
    private static readonly Lazy<byte[]> StandardDhtSegment = new(BuildDht); // lazy: the tables below are initialised after this field

    private static byte[] BuildDht()
    {
        var tables = new List<byte>();
        tables.AddRange(Table(0x00, new byte[] { 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0 }, Enumerable.Range(0, 12).Select(i => (byte)i).ToArray()));
        tables.AddRange(Table(0x01, new byte[] { 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 }, Enumerable.Range(0, 12).Select(i => (byte)i).ToArray()));
        tables.AddRange(Table(0x10, new byte[] { 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d }, AcLuminance));
        tables.AddRange(Table(0x11, new byte[] { 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77 }, AcChrominance));
        int length = tables.Count + 2;
        return new byte[] { 0xFF, 0xC4, (byte)(length >> 8), (byte)length }.Concat(tables).ToArray();
    }

    private static readonly byte[] AcLuminance =
    {
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08,
        0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
        0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
        0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
        0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
        0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    };

    private static readonly byte[] AcChrominance =
    {
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91,
        0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
        0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
        0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
        0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
        0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    };
}
