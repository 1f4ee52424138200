using Grpo.Cli;

// --device auto says once, on standard error, which backend it chose.
Grpo.Native.Devices.Device.DiagnosticLog = Console.Error;
return GrpoCommand.Run(args, Console.Out, Console.Error);
