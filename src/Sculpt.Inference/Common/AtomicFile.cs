using System.Text;

namespace Sculpt.Common;

/// <summary>
/// Writes go to a temporary file in the same folder and are renamed into place only when complete. Temporaries
/// still in flight are removed when the process is stopped by SIGINT or SIGTERM.
/// </summary>
public static class AtomicFile
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> InFlight = new();
    private static readonly System.Runtime.InteropServices.PosixSignalRegistration[] Handlers =
    [
        System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, _ => CleanUp()),
        System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, _ => CleanUp()),
    ];

    /// <summary>A temporary file or folder to remove if the process is stopped before it is renamed into place.</summary>
    public static void Track(string path) { _ = Handlers; InFlight[path] = true; }
    public static void Untrack(string path) => InFlight.TryRemove(path, out _);

    private static void CleanUp()
    {
        foreach (var path in InFlight.Keys)
        {
            // the main thread may still be writing into a scratch folder, so a recursive delete can meet a file created
            // after it listed the folder ("directory not empty"): try again until the folder is gone (then no writer
            // can recreate it), for at most about a second
            for (int attempt = 0; attempt < 50 && (File.Exists(path) || Directory.Exists(path)); attempt++)
            {
                try
                {
                    if (File.Exists(path)) File.Delete(path);
                    else Directory.Delete(path, true);
                }
                catch (IOException) { Thread.Sleep(20); } // best effort while the process ends
                catch (UnauthorizedAccessException) { break; }
            }
        }
    }

    /// <summary>
    /// Fails now, before long work, when <paramref name="path"/> cannot be written. Folders it had to create for the
    /// probe are removed again, so a command that fails later leaves nothing behind.
    /// </summary>
    public static void CheckWritable(string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new IOException($"{path}: is a folder, not a file to write");
        var dir = Path.GetDirectoryName(full)!;
        var created = new List<string>();
        for (var d = dir; d != null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) created.Add(d);
        var probe = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.probe");
        try
        {
            Directory.CreateDirectory(dir);
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write)) { }
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{path}: cannot be written ({e.Message.Split('\n')[0]})");
        }
        finally
        {
            // innermost first, and only while empty: never anything another writer put there meanwhile
            foreach (var d in created)
            {
                try { if (Directory.Exists(d) && !Directory.EnumerateFileSystemEntries(d).Any()) Directory.Delete(d); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { break; }
            }
        }
    }

    /// <summary>
    /// Builds a folder in a sibling temp folder and renames it into place when complete. Refuses, before any
    /// work, an existing folder that is not empty.
    /// </summary>
    public static void WriteDirectory(string dir, Action<string> write)
    {
        var full = Path.GetFullPath(dir).TrimEnd('/');
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"{dir}: output folder exists and is not empty");
        var tmp = full + $".tmp-{Guid.NewGuid():N}";
        Track(tmp);
        try
        {
            Directory.CreateDirectory(tmp);
            write(tmp);
            if (Directory.Exists(full)) Directory.Delete(full);
            Directory.Move(tmp, full);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            Untrack(tmp);
        }
    }

    public static void Write(string path, Action<Stream> write) => WriteTogether([(path, write)]);

    /// <summary>
    /// Files that belong together (a per-case table and its summary): every one is written to its temporary first,
    /// and only when all are complete are they renamed into place, so a failure leaves none of them half-made or alone.
    /// </summary>
    public static void WriteTogether(IReadOnlyList<(string Path, Action<Stream> Write)> files)
    {
        var temporaries = new List<(string Tmp, string Full)>();
        try
        {
            foreach (var (path, write) in files)
            {
                var full = Path.GetFullPath(path);
                var dir = Path.GetDirectoryName(full)!;
                var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
                Track(tmp);
                temporaries.Add((tmp, full));
                try
                {
                    if (Directory.Exists(full)) throw new IOException("is a folder, not a file to write");
                    Directory.CreateDirectory(dir);
                    using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
                    write(fs);
                    fs.Flush(true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // name the file the user asked for, not the hidden temporary
                    throw new IOException($"{path}: cannot write: {e.Message.Split('\n')[0].Replace(tmp, path)}");
                }
            }
            foreach (var (tmp, full) in temporaries) File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            foreach (var (tmp, _) in temporaries)
            {
                if (File.Exists(tmp)) File.Delete(tmp);
                Untrack(tmp);
            }
        }
    }

    public static void WriteAllTexts(IReadOnlyList<(string Path, string Text)> files) =>
        WriteTogether(files.Select(f => (f.Path, (Action<Stream>)(s => s.Write(Encoding.UTF8.GetBytes(f.Text))))).ToList());

    public static void WriteAllText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
}

/// <summary>A scratch folder, removed when disposed and also when the process is stopped by SIGINT or SIGTERM.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; }

    public TempFolder(string prefix)
    {
        Path = Directory.CreateTempSubdirectory(prefix).FullName;
        AtomicFile.Track(Path);
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // scratch only: never mask the real error
        finally { AtomicFile.Untrack(Path); }
    }
}
