# stats: the statistics page and its charts.
stats-title = Статистика
stats-period = Период
stats-period-24h = Последние 24 часа
stats-period-7d = Последние 7 дней
stats-scope-these = все попытки этих вебхуков.
stats-scope-all = все попытки всех вебхуков.
stats-per-hour = Попытки по часам
stats-by-webhook = По вебхукам
stats-by-event = По событиям
stats-col-webhook = Вебхук
stats-col-event = Событие
stats-totals = Итоги
stats-col-attempts = Попыток
stats-col-failed = Неудачных
stats-col-rate = Доля успешных
stats-p50 = Медиана
stats-p95 = 95-й процентиль
stats-p50-response = Медиана ответа
stats-p95-response = 95-й процентиль ответа
stats-latency = Время ответа (медиана и 95-й процентиль)
stats-rate-chart = Доля успешных: { $what }
stats-latency-chart = Время ответа: { $what }
stats-in-numbers = { $what }: в цифрах
stats-rate-of = { $rate } из { $count }
stats-none = За этот период попыток не было.
stats-chart-summary = Столбцов по часам: { $bars }; всего успешных попыток: { $successes }, неудачных: { $failures }; не больше { $peak } за час
stats-chart-caption = Часы по вашему времени; верх графика — { $scale } { $scale ->
    [one] попытка
    [few] попытки
   *[many] попыток
}
stats-hour-title = { $hour }: успешных { $successes }, неудачных { $failures }
stats-legend-ok = успешные
stats-legend-failed = неудачные
