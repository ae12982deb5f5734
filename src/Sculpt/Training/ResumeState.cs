using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sculpt.Training;

/// <summary>Reading a run's resume state: any defect becomes one line naming the file, never a crash.</summary>
public static class ResumeState
{
    public static void Read(string path, Action read)
    {
        try { read(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or IOException or InvalidDataException
            or ArgumentException or NotSupportedException or System.Runtime.InteropServices.ExternalException)
        {
            var problem = Common.Messages.OneLine(e.Message);
            if (problem.StartsWith(path + ": ")) problem = problem[(path.Length + 2)..]; // named once
            throw new InvalidDataException($"{path}: corrupt resume state ({problem}); start again without --resume");
        }
    }

    public static int Int(JsonObject state, string key) =>
        state[key] is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw new JsonException($"{key} missing or not an integer");
}
