namespace Sculpt.Tests;

internal static class TestFiles
{
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "sculpt-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
