namespace Sculpt.Common;

public static class Messages
{
    /// <summary>The first line of a message, without control characters (a decoder's NUL padding, escape codes).</summary>
    public static string OneLine(string message) =>
        new string(message.Split('\n')[0].Where(c => !char.IsControl(c)).ToArray());

    /// <summary>
    /// Text taken from an input file for a message: control characters (NUL padding, escape codes, line breaks)
    /// shown as \xNN and the whole cut to <paramref name="max"/> characters, so a message stays one readable line.
    /// </summary>
    public static string Quote(string text, int max = 80)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var c in text)
        {
            if (sb.Length >= max) return sb.Append('…').ToString();
            if (char.IsControl(c) || char.IsSurrogate(c) || c == '\uFFFD') sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\x{(int)c & 0xFF:x2}"); else sb.Append(c);
        }
        return sb.ToString();
    }
}
