# Retrying a time range's failed deliveries, replaying past events.
replay-failed-since = Failed since (UTC)
replay-failed-until = Failed until (UTC)
replay-bad-time = { $field }: give a date and time in UTC, such as 2025-03-31T12:00.
replay-range-summary = Retry failed deliveries of a time range
replay-range-help = Failed deliveries whose last attempt failed in the range are sent again (at most 10,000 at a time; submit again for more). Times are UTC; leave a bound empty for no limit.
replay-range-button = Retry failed in range
replay-summary = Replay past events
replay-help = Stored events this webhook would have received since that time are sent to it, oldest first, at most 10,000 at a time. Events it already got are not sent again.
replay-since = Events since (UTC)
replay-since-missing = Give the time to replay events from.
replay-button = Replay events
replay-page-title = Replay
replay-result-title = Replay to “{ $name }”
replay-result-sent = { $count ->
    [0] No event to send
    [one] 1 event will be sent now
   *[other] { $count } events will be sent now
}
replay-result-since = — events since
replay-result-skipped = { $count } already delivered or pending, not sent again.
replay-result-more = More events remain after these.
replay-back = Back to the webhook
