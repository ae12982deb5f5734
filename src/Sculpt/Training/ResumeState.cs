using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sculpt.Training;

/// <summary>Reading a run's resume state: any defect becomes one line naming the file, never a crash.</summary>
public static class ResumeState
{
    public static void Read(string path, Action read)
    {
        try { read(); }
        catch (InvalidDataException e) when (e.Message.StartsWith(path)) { throw; }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or IOException or InvalidDataException
            or ArgumentException or NotSupportedException or System.Runtime.InteropServices.ExternalException)
        {
            throw new InvalidDataException($"{path}: corrupt resume state ({e.Message.Split('\n')[0]}); start again without --resume");
        }
    }

    public static int Int(JsonObject state, string key) =>
        state[key] is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw new JsonException($"{key} missing or not an integer");
}
