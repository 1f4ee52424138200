using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;

namespace Grpo.Cli;

/// <summary>
/// Turns what a user can get wrong into one line on standard error and exit code 2, with no stack
/// trace: bad options, missing or corrupt files, a batch or config that does not fit the model.
/// </summary>
internal static class CliErrors
{
    /// <summary>
    /// True for the exceptions that mean "the input was wrong" or "it does not fit the device" (out of memory: its message
    /// says what to lower), as opposed to a bug or a device fault.
    /// </summary>
    public static bool IsUserError(Exception e) => e is ArgumentException or FormatException or CheckpointFormatException
        or FileNotFoundException or DirectoryNotFoundException or NotSupportedException or InvalidDataException or DeviceOutOfMemoryException
        or Grpo.Native.Tokenization.Templates.ChatTemplateException or Grpo.Native.Datasets.PromptDatasetException;

    /// <summary>The exception's message without .NET's " (Parameter 'x')" suffix.</summary>
    public static string Message(Exception e)
    {
        string message = e is ArgumentException { ParamName: { } name } argument ? argument.Message.Replace($" (Parameter '{name}')", "") : e.Message;
        int actualValue = message.IndexOf("\nActual value was", StringComparison.Ordinal); // ArgumentOutOfRangeException's suffix
        return actualValue >= 0 ? message[..actualValue] : message;
    }

    /// <summary>Runs <paramref name="body"/>; a user error prints "what: message" and returns 2.</summary>
    public static int Guarded(TextWriter error, string what, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsUserError(e))
        {
            error.WriteLine($"{what}: {Message(e)}");
            return GrpoCommand.BadArguments;
        }
    }

    /// <summary>The device named by --device (or GRPO_DEVICE), or a user error naming the option.</summary>
    public static Device CreateDevice(string? name)
    {
        try
        {
            return name is null ? Device.FromEnvironment() : Device.Create(name);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            throw new ArgumentException($"--device: {Message(e)}", e);
        }
    }
}
