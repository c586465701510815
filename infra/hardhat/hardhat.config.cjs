// Hardhat's node as a second, independent EVM node beside anvil (tests start it with
// `hardhat --config infra/hardhat/hardhat.config.cjs node --hostname 127.0.0.1 --port P`).
// Prague enables the EIP-2537 BLS12-381 precompiles the EpochVerifier uses.
module.exports = {
  networks: {
    hardhat: {
      hardfork: "prague",
      chainId: 31337,
      blockGasLimit: 30000000,
      allowUnlimitedContractSize: false,
    },
  },
};
