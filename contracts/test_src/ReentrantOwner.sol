// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Agent} from "../src/Agent.sol";
import {AgentFactory} from "../src/AgentFactory.sol";
import {Reentrant} from "./Reentrant.sol";

/// @title ReentrantOwner
/// @notice Test double: an agent owner contract that re-enters the agent from `receive` when its
///         royalties are withdrawn and armed.
contract ReentrantOwner is Reentrant {
    /// @notice Creates an agent owned by this contract.
    function createAgent(
        AgentFactory factory,
        bytes32 measurement,
        uint96 price,
        uint16 royaltyBps,
        address registry,
        uint32 timeout
    ) external returns (address) {
        return factory.createAgent(measurement, price, royaltyBps, registry, timeout);
    }

    /// @notice Sets `agent`'s price.
    function setPrice(Agent agent, uint96 price) external {
        agent.setPrice(price);
    }

    /// @notice Pauses or unpauses `agent`.
    function setPaused(Agent agent, bool paused) external {
        agent.setPaused(paused);
    }

    /// @notice Hands `agent` to `newOwner`.
    function transferOwnership(Agent agent, address newOwner) external {
        agent.transferOwnership(newOwner);
    }

    /// @notice Withdraws this contract's credit from `agent`.
    function withdraw(Agent agent) external returns (uint256) {
        return agent.withdraw();
    }
}
