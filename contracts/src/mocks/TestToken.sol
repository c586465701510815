// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice Test-only ERC-20 with configurable decimals (e.g. 6, like USDC): a job paying its
///         rewards in an existing token rather than the deployment's RewardToken.
contract TestToken is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    /// @notice The number of decimals amounts are expressed in.
    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Mints `amount` to `to` to anyone who asks (test token); emits `Transfer`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
