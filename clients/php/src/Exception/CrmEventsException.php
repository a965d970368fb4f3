<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/**
 * Implemented by every exception this library throws, so a caller can catch
 * them all with one clause.
 */
interface CrmEventsException extends \Throwable
{
}
