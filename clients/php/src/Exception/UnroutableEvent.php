<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/**
 * The broker returned the event (`mandatory`): no queue is bound to the
 * exchange for its routing key, so nobody would ever have received it.
 */
final class UnroutableEvent extends PublishFailed
{
    public function __construct(
        string $eventId,
        public readonly string $exchange,
        public readonly string $routingKey,
        public readonly int $replyCode,
        public readonly string $replyText,
    ) {
        parent::__construct(
            $eventId,
            "event {$eventId} ({$routingKey}) is unroutable: the broker returned it from exchange "
            . "`{$exchange}` ({$replyCode} {$replyText}); is webhookd's queue bound to it?",
        );
    }
}
