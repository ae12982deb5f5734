namespace Sculpt.Data;

/// <summary>
/// Limits checked before anything is allocated for an input, so that no file, however hostile, can exhaust memory.
/// They are far above real data: an echo frame is at most about 1024×768, a CAMUS image about 1945×1181.
/// </summary>
public static class InputLimits
{
    /// <summary>Pixels of one decoded image, video frame or resampled plane (4096 × 4096).</summary>
    public const long MaxImagePixels = 4096L * 4096;
    /// <summary>Bytes of one image file, or of a volume after decompression.</summary>
    public const long MaxFileBytes = 256L << 20;

    public static void CheckPixels(long width, long height, string source, string what = "image")
    {
        if (width < 1 || height < 1) throw new InvalidDataException($"{source}: {what} size {width}×{height} is not positive");
        if (width * height > MaxImagePixels)
            throw new InvalidDataException($"{source}: {what} of {width}×{height} pixels is larger than the {MaxImagePixels:N0} allowed");
    }

    /// <summary>All of a regular file of at most <see cref="MaxFileBytes"/> (<see cref="Common.InputFile.ReadAll"/>).</summary>
    public static byte[] ReadFile(string path, string what = "file") => Common.InputFile.ReadAll(path, what, MaxFileBytes);

    /// <summary>A decompressed stream read to its end, refusing it once it passes <see cref="MaxFileBytes"/> (a bomb).</summary>
    public static byte[] ReadBounded(Stream s, string source)
    {
        using var ms = new MemoryStream();
        var buffer = new byte[1 << 16];
        int n;
        while ((n = s.Read(buffer, 0, buffer.Length)) > 0)
        {
            if (ms.Length + n > MaxFileBytes) throw new InvalidDataException($"{source}: decompresses to more than {MaxFileBytes:N0} bytes");
            ms.Write(buffer, 0, n);
        }
        return ms.ToArray();
    }
}
