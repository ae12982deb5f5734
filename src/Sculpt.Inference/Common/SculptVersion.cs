using System.Reflection;

namespace Sculpt.Common;

/// <summary>The one version number (Directory.Build.props), as the assembly carries it.</summary>
public static class SculptVersion
{
    public static string Text { get; } =
        typeof(SculptVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
}
