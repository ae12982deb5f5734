namespace Sculpt.Common;

public static class Messages
{
    /// <summary>The first line of a message, without control characters (a decoder's NUL padding, escape codes).</summary>
    public static string OneLine(string message) =>
        new string(message.Split('\n')[0].Where(c => !char.IsControl(c)).ToArray());
}
