using Grpo.Cli;

return GrpoCommand.Run(args, Console.Out, Console.Error);
