<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/**
 * A message the daemon would dead-letter (unknown event, `data` that is not
 * an object, a body over the size limit...), refused before anything is
 * sent. The message names the field at fault.
 */
final class InvalidEvent extends \InvalidArgumentException implements CrmEventsException
{
    public function __construct(public readonly string $field, string $reason, ?\Throwable $previous = null)
    {
        parent::__construct("invalid event: `{$field}` {$reason}", 0, $previous);
    }
}
