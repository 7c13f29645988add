"""Independent oracles: what the tests compare the code under test with. None of them shares code with the
implementation it checks (kernels/, compile/c/); each is written from the contract (../shared/spec/features.md, a
module's documented rules) or is another library (pandas)."""
