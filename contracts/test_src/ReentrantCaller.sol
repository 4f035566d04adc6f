// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Agent} from "../src/Agent.sol";
import {Reentrant} from "./Reentrant.sol";

/// @title ReentrantCaller
/// @notice Test double: a caller contract that requests, cancels and withdraws its refund, and
///         re-enters the agent (`withdraw`, `cancel`, `request`, …) from `receive` when armed.
contract ReentrantCaller is Reentrant {
    /// @notice Opens a request on `agent`, paying `msg.value`.
    function request(Agent agent, bytes calldata input) external payable returns (uint256) {
        return agent.request{value: msg.value}(input);
    }

    /// @notice Cancels request `id` on `agent`.
    function cancel(Agent agent, uint256 id, Agent.Request calldata req) external {
        agent.cancel(id, req);
    }

    /// @notice Withdraws this contract's credit from `agent`.
    function withdraw(Agent agent) external returns (uint256) {
        return agent.withdraw();
    }
}
