<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

use Webhookd\CrmEvents\Exception\InvalidConfiguration;

/**
 * The exchange (and, unless null, webhookd's queue) the publisher declares
 * before its first publish, with exactly the arguments webhookd declares them
 * with: RabbitMQ refuses a redeclaration whose arguments differ. Declaring
 * the queue too means an event published before any worker ever started is
 * kept, as with the Rust producer.
 */
final class Topology
{
    public const DEFAULT_EXCHANGE = 'crm.events';
    public const DEFAULT_QUEUE = 'webhookd.events';

    /** webhookd's `QUORUM_DELIVERY_LIMIT` (crates/producer/src/topology.rs). */
    private const QUORUM_DELIVERY_LIMIT = 20;

    /**
     * @param string|null $queue webhookd's queue (`broker.queue`); null declares
     *        only the exchange, for a CRM that must not create queues
     * @param string $queueType `broker.queue_type`: classic or quorum
     */
    public function __construct(
        public readonly string $exchange = self::DEFAULT_EXCHANGE,
        public readonly ?string $queue = self::DEFAULT_QUEUE,
        public readonly string $queueType = 'classic',
    ) {
        foreach (['exchange' => $exchange, 'queue' => $queue ?? 'q'] as $field => $name) {
            if ($name === '' || \strlen($name) > 255) {
                throw new InvalidConfiguration("topology: `{$field}` must be 1 to 255 bytes");
            }
        }
        if ($queueType !== 'classic' && $queueType !== 'quorum') {
            throw new InvalidConfiguration("topology: `queueType` must be classic or quorum, got `{$queueType}`");
        }
    }

    /** Only the exchange: publishing fails as unroutable until webhookd has bound its queue. */
    public static function exchangeOnly(string $exchange = self::DEFAULT_EXCHANGE): self
    {
        return new self($exchange, null);
    }

    /**
     * The declarations, in order, as [method, arguments] pairs; kept as data
     * so the unit tests can compare them with webhookd's.
     *
     * @return list<array{0: string, 1: array<string, mixed>}>
     */
    public function declarations(): array
    {
        $steps = [['exchange', ['name' => $this->exchange, 'type' => 'topic']]];
        if ($this->queue === null) {
            return $steps;
        }
        $dlx = $this->exchange . '.dlx';
        $dlq = $this->queue . '.dlq';
        $dlqArguments = [];
        $queueArguments = ['x-dead-letter-exchange' => $dlx];
        if ($this->queueType === 'quorum') {
            $dlqArguments = ['x-queue-type' => 'quorum'];
            $queueArguments += [
                'x-queue-type' => 'quorum',
                'x-dead-letter-strategy' => 'at-least-once',
                'x-overflow' => 'reject-publish',
                'x-delivery-limit' => self::QUORUM_DELIVERY_LIMIT,
            ];
        }

        return [
            ...$steps,
            ['exchange', ['name' => $dlx, 'type' => 'fanout']],
            ['queue', ['name' => $dlq, 'arguments' => $dlqArguments]],
            ['bind', ['queue' => $dlq, 'exchange' => $dlx, 'routing_key' => '']],
            ['queue', ['name' => $this->queue, 'arguments' => $queueArguments]],
            ['bind', ['queue' => $this->queue, 'exchange' => $this->exchange, 'routing_key' => '#']],
        ];
    }
}
