using BenchmarkDotNet.Running;

// Runs the suites BenchmarkDotNet finds in this assembly; pass --filter '*Name*' to pick some.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
