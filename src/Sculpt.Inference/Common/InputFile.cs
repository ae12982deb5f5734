namespace Sculpt.Common;

/// <summary>Reading an input file whole, after checks that no hostile path can get past.</summary>
public static class InputFile
{
    /// <summary>Bytes of one text input (CSV, JSON, split lists): EchoNet's VolumeTracings.csv for 10,000 videos is about 20 MB.</summary>
    public const long MaxTextBytes = 256L << 20;

    /// <summary>
    /// The file's information once it is known to be a regular, non-empty file of at most <paramref name="maxBytes"/>:
    /// devices and FIFOs report no length, so they are refused before anything opens them (/dev/zero would never
    /// end, a FIFO blocks).
    /// </summary>
    public static FileInfo Require(string path, string what, long maxBytes)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"{path}: is a folder, not a {what}");
        var info = new FileInfo(path);
        // a symbolic link's own FileInfo gives the link's length, not its target's: a linked file (datasets often
        // link into shared storage) was read as its first few bytes and refused as corrupt
        if (info.LinkTarget is not null)
        {
            try { info = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info; }
            catch (IOException e) { throw new InvalidDataException($"{path}: cannot follow the link: {e.Message}"); }
            if (Directory.Exists(info.FullName)) throw new InvalidDataException($"{path}: links to a folder, not a {what}");
        }
        if (!info.Exists) throw new InvalidDataException($"{path}: {what} not found");
        if (info.Length == 0) throw new InvalidDataException($"{path}: empty, or not a regular file");
        if (info.Length > maxBytes) throw new InvalidDataException($"{path}: {info.Length:N0} bytes is larger than the {maxBytes:N0} allowed");
        return info;
    }

    /// <summary>The first <paramref name="count"/> bytes (fewer if the file is shorter), to tell a format by its magic.</summary>
    public static byte[] ReadHead(string path, string what, int count, long maxBytes = long.MaxValue)
    {
        Require(path, what, maxBytes); // before opening: a FIFO would block
        var head = new byte[count];
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            stream.ReadAtLeast(head, count, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot read: {e.Message}");
        }
        return head;
    }

    /// <summary>All bytes of a file <see cref="Require"/> accepts; any read error is one line naming the file.</summary>
    public static byte[] ReadAll(string path, string what, long maxBytes)
    {
        try
        {
            var bytes = new byte[Require(path, what, maxBytes).Length];
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            stream.ReadExactly(bytes);
            return bytes;
        }
        catch (EndOfStreamException) { throw new InvalidDataException($"{path}: shorter than its size (changed while read?)"); }
        catch (IOException e) { throw new InvalidDataException($"{path}: cannot read: {e.Message}"); }
        catch (UnauthorizedAccessException e) { throw new InvalidDataException($"{path}: cannot read: {e.Message}"); }
    }

    /// <summary>A text file read whole as UTF-8 (a byte-order mark dropped), with <see cref="ReadAll"/>'s checks.</summary>
    public static string ReadText(string path, string what, long maxBytes = MaxTextBytes)
    {
        var text = System.Text.Encoding.UTF8.GetString(ReadAll(path, what, maxBytes));
        return text.Length > 0 && text[0] == '\uFEFF' ? text[1..] : text;
    }

    /// <summary>The lines of <see cref="ReadText"/> (LF or CRLF).</summary>
    public static string[] ReadLines(string path, string what, long maxBytes = MaxTextBytes) =>
        ReadText(path, what, maxBytes).Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
}
