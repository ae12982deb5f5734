using System.Text;
using Sculpt.Data;
using StbImageWriteSharp;

namespace Sculpt.Tests.Fixtures;

/// <summary>
/// Writes an EchoNet-Dynamic-layout folder: FileList.csv (CRLF, FileName without extension),
/// VolumeTracings.csv (long axis first, then chords with fractional coordinates) and Motion-JPEG AVIs with
/// the container's real variety: a JUNK chunk, frames inside LIST 'rec ', odd-sized padded chunks, an idx1
/// index, and frames without Huffman tables (AVI1 MJPEG).
/// </summary>
public sealed class EchoNetFixture
{
    public const int Size = 48, FramesPerVideo = 10;
    public string Root { get; }
    /// <summary>Source pixels (RGB, before JPEG) per video and frame.</summary>
    public Dictionary<string, byte[][]> Pixels { get; } = new();
    /// <summary>Tracing rows per video and traced frame, in file order (first row = long axis).</summary>
    public Dictionary<string, Dictionary<int, List<(double X1, double Y1, double X2, double Y2)>>> Traces { get; } = new();
    public List<(string Name, string Split)> Videos { get; } = new();

    public EchoNetFixture(string root, int videos = 6)
    {
        // EchoNet's CSVs are written with '.', whatever the culture the tests run under
        using var invariant = Sculpt.Common.InvariantCultureScope.Enter();
        Root = root;
        Directory.CreateDirectory(Path.Combine(root, "Videos"));
        var splits = new[] { "TRAIN", "TRAIN", "TRAIN", "VAL", "TEST", "TRAIN" };
        var fileList = new StringBuilder("FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split\r\n");
        var tracings = new StringBuilder("FileName,X1,Y1,X2,Y2,Frame\r\n");
        for (int v = 0; v < videos; v++)
        {
            string name = $"0X{v + 10:X2}AB{v}C";
            Videos.Add((name, splits[v % splits.Length]));
            fileList.Append($"{name},55.{v},30.1,70.2,{Size},{Size},50,{FramesPerVideo},{splits[v % splits.Length]}\r\n");
            var frames = new byte[FramesPerVideo][];
            for (int f = 0; f < FramesPerVideo; f++) frames[f] = FramePixels(v, f);
            Pixels[name] = frames;
            WriteAvi(Path.Combine(root, "Videos", name + ".avi"), frames, stripHuffman: v % 2 == 1);
            // the last video has a single traced frame: EchoNet drops it
            int[] traced = v == videos - 1 ? new[] { 2 } : new[] { 2 + v % 3, 6 + v % 3 };
            Traces[name + ".avi"] = new();
            foreach (int f in traced)
            {
                double radius = 8 + 3 * Math.Cos(2 * Math.PI * f / FramesPerVideo) + 0.37 * v;
                var rows = Tracing(24.3 + v * 0.5, 23.6, radius, 1.6, 21);
                Traces[name + ".avi"][f] = rows;
                foreach (var r in rows) tracings.Append($"{name}.avi,{r.X1:0.######},{r.Y1:0.######},{r.X2:0.######},{r.Y2:0.######},{f}\r\n");
            }
        }
        File.WriteAllText(Path.Combine(root, "FileList.csv"), fileList.ToString());
        File.WriteAllText(Path.Combine(root, "VolumeTracings.csv"), tracings.ToString());
    }

    public static byte[] FramePixels(int video, int frame)
    {
        var px = new byte[Size * Size * 3];
        for (int y = 0; y < Size; y++)
            for (int x = 0; x < Size; x++)
            {
                double d = Math.Sqrt((x - 24.0) * (x - 24) + (y - 24.0) * (y - 24));
                int g = (int)Math.Clamp(40 + 3 * x + 2 * y - (d < 9 + frame % 3 ? 60 : 0) + 5 * video, 0, 255);
                for (int c = 0; c < 3; c++) px[(y * Size + x) * 3 + c] = (byte)g;
            }
        return px;
    }

    /// <summary>EchoNet's tracing layout: a long-axis row, then chords perpendicular to it from apex to base.</summary>
    public static List<(double X1, double Y1, double X2, double Y2)> Tracing(double cx, double cy, double rx, double elong, int chords)
    {
        var rows = new List<(double X1, double Y1, double X2, double Y2)> { (cx, cy - rx * elong, cx + 0.3, cy + rx * elong) };
        for (int i = 1; i <= chords; i++)
        {
            double t = -1 + 2.0 * i / (chords + 1);
            double half = rx * Math.Sqrt(1 - t * t);
            double y = cy + t * rx * elong;
            rows.Add((cx - half, y + 0.13, cx + half, y - 0.21));
        }
        return rows;
    }

    public static byte[] EncodeJpeg(byte[] rgb, bool stripHuffman)
    {
        using var ms = new MemoryStream();
        new ImageWriter().WriteJpg(rgb, Size, Size, ColorComponents.RedGreenBlue, ms, 95);
        var jpeg = ms.ToArray();
        if (!stripHuffman) return jpeg;
        // drop every DHT segment: MJPEG frames rely on the standard tables, which stb's writer also uses
        var outBytes = new List<byte> { 0xFF, 0xD8 };
        int at = 2;
        while (at < jpeg.Length)
        {
            byte marker = jpeg[at + 1];
            if (marker == 0xDA) { outBytes.AddRange(jpeg[at..]); break; }
            int len = jpeg[at + 2] << 8 | jpeg[at + 3];
            if (marker != 0xC4) outBytes.AddRange(jpeg[at..(at + 2 + len)]);
            at += 2 + len;
        }
        return outBytes.ToArray();
    }

    public static void WriteAvi(string path, byte[][] frames, bool stripHuffman)
    {
        var jpegs = frames.Select(f => EncodeJpeg(f, stripHuffman)).ToList();
        byte[] Chunk(string id, byte[] body) => Encoding.ASCII.GetBytes(id).Concat(BitConverter.GetBytes(body.Length)).Concat(body).Concat(body.Length % 2 == 1 ? new byte[] { 0 } : Array.Empty<byte>()).ToArray();
        byte[] List(string type, params byte[][] items) => Chunk("LIST", Encoding.ASCII.GetBytes(type).Concat(items.SelectMany(x => x)).ToArray());
        byte[] U32(params int[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();
        var avih = U32(20000, 0, 0, 0x10, frames.Length, 0, 1, 0, Size, Size, 0, 0, 0, 0);
        var strh = Encoding.ASCII.GetBytes("vidsMJPG").Concat(U32(0, 0, 0, 1, 50, 0, frames.Length, 0, -1, 0)).Concat(new byte[8]).ToArray();
        var strf = U32(40, Size, Size).Concat(BitConverter.GetBytes((short)1)).Concat(BitConverter.GetBytes((short)24)).Concat(Encoding.ASCII.GetBytes("MJPG")).Concat(U32(Size * Size * 3, 0, 0, 0, 0)).ToArray();
        var hdrl = List("hdrl", Chunk("avih", avih), List("strl", Chunk("strh", strh), Chunk("strf", strf)));
        var frameChunks = jpegs.Select(j => Chunk("00dc", j)).ToList();
        // the first half plain in movi, the rest grouped in LIST 'rec ' (both appear in the wild)
        int half = frameChunks.Count / 2;
        var movi = List("movi", frameChunks.Take(half).Append(List("rec ", frameChunks.Skip(half).ToArray())).ToArray());
        var idx = Chunk("idx1", jpegs.SelectMany((j, i) => Encoding.ASCII.GetBytes("00dc").Concat(U32(0x10, 4 + i, j.Length))).ToArray());
        var riff = Chunk("RIFF", Encoding.ASCII.GetBytes("AVI ").Concat(hdrl).Concat(Chunk("JUNK", new byte[37])).Concat(movi).Concat(idx).ToArray());
        File.WriteAllBytes(path, riff);
    }
}
