<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/** A publisher option or topology name that cannot work; the message names it. */
final class InvalidConfiguration extends \InvalidArgumentException implements CrmEventsException
{
}
