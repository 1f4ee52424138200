#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Build, test, benchmark and pack Grpo.Native. Every target only calls `dotnet`.
.DESCRIPTION
    The same steps the README gives as plain dotnet commands, for PowerShell users.
    A test parses this file with the PowerShell language parser, so every target listed in
    ValidateSet must have a case below and every target the README names must exist.
.EXAMPLE
    ./build.ps1 test
.EXAMPLE
    ./build.ps1 bench -Filter '*Sampling*'
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('restore', 'build', 'test', 'bench', 'pack')]
    [string] $Target = 'build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # BenchmarkDotNet filter for the bench target, e.g. '*Gemm*'.
    [string] $Filter = '*',

    # Where pack writes the .nupkg files.
    [string] $Output = 'artifacts'
)

$ErrorActionPreference = 'Stop'
Set-Location -Path $PSScriptRoot
$solution = 'Grpo.Native.sln'

function Invoke-Dotnet {
    param([Parameter(ValueFromRemainingArguments = $true)] [string[]] $Arguments)
    Write-Host "dotnet $($Arguments -join ' ')"
    & dotnet @Arguments
    if ($LASTEXITCODE -ne 0) { throw "dotnet $($Arguments[0]) failed with exit code $LASTEXITCODE" }
}

switch ($Target) {
    'restore' { Invoke-Dotnet restore $solution }
    'build'   { Invoke-Dotnet build $solution -c $Configuration }
    # On Linux the README's test command, which installs Open MPI for the data-parallel tests when mpirun is missing.
    'test'    {
        if ($IsLinux) { & bash scripts/test.sh; if ($LASTEXITCODE -ne 0) { throw "scripts/test.sh failed with exit code $LASTEXITCODE" } }
        else { Invoke-Dotnet test $solution -c $Configuration }
    }
    'bench'   { Invoke-Dotnet run -c Release --project benchmarks/Grpo.Native.Benchmarks -- --filter $Filter }
    'pack'    { Invoke-Dotnet pack src/Grpo.Native/Grpo.Native.csproj -c $Configuration -o $Output }
}
