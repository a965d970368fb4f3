<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/**
 * The event may not have reached the broker. Subclasses say why; all of them
 * carry the event id (null when no event was being published), so a retry can reuse it (the daemon delivers an id once).
 */
class PublishFailed extends \RuntimeException implements CrmEventsException
{
    public function __construct(public readonly ?string $eventId, string $message, ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}
