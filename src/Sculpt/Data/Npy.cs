using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sculpt.Data;

/// <summary>NumPy .npy (format 1.0/2.0/3.0) for float32 C-order arrays: the raw-tensor exchange format.</summary>
public static partial class Npy
{
    public static (float[] Data, long[] Shape) Read(string path)
    {
        var b = InputLimits.ReadFile(path, ".npy file");
        if (b.Length < 10 || b[0] != 0x93 || Encoding.ASCII.GetString(b, 1, 5) != "NUMPY") throw new InvalidDataException($"{path}: not a .npy file");
        int major = b[6];
        int headerLen, start;
        if (major == 1) { headerLen = BitConverter.ToUInt16(b, 8); start = 10; }
        else if (major is 2 or 3) { headerLen = (int)BitConverter.ToUInt32(b, 8); start = 12; }
        else throw new InvalidDataException($"{path}: unsupported .npy version {major}");
        if (headerLen < 0 || start + headerLen > b.Length) throw new InvalidDataException($"{path}: truncated .npy header");
        var header = Encoding.UTF8.GetString(b, start, headerLen);
        var descr = DescrRegex().Match(header).Groups[1].Value;
        if (descr is not ("<f4" or "=f4" or "|f4")) throw new InvalidDataException($"{path}: dtype '{Common.Messages.Quote(descr)}' is not little-endian float32");
        if (FortranRegex().Match(header).Groups[1].Value == "True") throw new InvalidDataException($"{path}: Fortran-order arrays are not supported");
        var shapeText = ShapeRegex().Match(header).Groups[1].Value;
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var d) ? d
                : throw new InvalidDataException($"{path}: shape ({Common.Messages.Quote(shapeText)}) is not a tuple of non-negative integers")).ToArray();
        int dataStart = start + headerLen;
        long count = 1;
        foreach (var d in shape)
            if (d > 0 && count > (b.Length - dataStart) / 4 / d + 1) count = long.MaxValue / 4; // more than the file holds: refused below
            else count *= d;
        if (b.Length - dataStart != count * 4) throw new InvalidDataException($"{path}: holds {b.Length - dataStart} data bytes, shape ({Common.Messages.Quote(shapeText)}) needs {count * 4}");
        var data = new float[count];
        Buffer.BlockCopy(b, dataStart, data, 0, (int)(count * 4));
        return (data, shape);
    }

    public static byte[] Encode(float[] data, long[] shape)
    {
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {shapeText}, }}";
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        var result = new byte[10 + header.Length + data.Length * 4];
        result[0] = 0x93; Encoding.ASCII.GetBytes("NUMPY").CopyTo(result, 1);
        result[6] = 1; result[7] = 0;
        BitConverter.GetBytes((ushort)header.Length).CopyTo(result, 8);
        Encoding.ASCII.GetBytes(header).CopyTo(result, 10);
        Buffer.BlockCopy(data, 0, result, 10 + header.Length, data.Length * 4);
        return result;
    }

    [GeneratedRegex(@"'descr':\s*'([^']*)'")] private static partial Regex DescrRegex();
    [GeneratedRegex(@"'fortran_order':\s*(True|False)")] private static partial Regex FortranRegex();
    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")] private static partial Regex ShapeRegex();
}
