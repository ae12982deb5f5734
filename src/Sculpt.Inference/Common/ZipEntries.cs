using System.IO.Compression;

namespace Sculpt.Common;

/// <summary>Reading one zip entry whole, refusing bombs and corruption that .NET's ZipArchive lets through.</summary>
public static class ZipEntries
{
    /// <summary>
    /// The entry's bytes, checked against its declared size before anything is inflated (a bomb), against the
    /// bytes actually inflated, and against its CRC-32 (.NET does not check stored entries: a flipped bit in a
    /// package's weights or a checkpoint's storages would pass unnoticed). Errors name <paramref name="path"/>.
    /// </summary>
    public static byte[] Read(ZipArchiveEntry e, long maxBytes, string path)
    {
        string name = e.FullName;
        if (e.Length > maxBytes) throw new InvalidDataException($"{path}: {name} declares {e.Length:N0} bytes, more than the {maxBytes:N0} allowed");
        using var s = e.Open();
        var data = new byte[e.Length];
        int read = 0;
        while (read < data.Length)
        {
            int n = s.Read(data, read, data.Length - read);
            if (n == 0) throw new InvalidDataException($"{path}: {name} is shorter than the zip declares (truncated?)");
            read += n;
        }
        if (s.ReadByte() >= 0) throw new InvalidDataException($"{path}: {name} is longer than the zip declares");
        if (Crc32.Of(data) != e.Crc32) throw new InvalidDataException($"{path}: {name} fails its CRC-32 check (the file is corrupt)");
        return data;
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected, as zip uses it).</summary>
public static class Crc32
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Of(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
