# Страницы ошибок.
errors-not-found-title = Не найдено
errors-not-found-webhook = Такого вебхука нет, или он не ваш.
errors-not-found-delivery = У этого вебхука нет такой доставки.
errors-not-found-page = По этому адресу страницы нет.
errors-forbidden-title = Отказано
errors-forbidden-text = Защитный токен формы отсутствует или устарел. Обновите страницу, с которой пришли, и отправьте форму ещё раз.
errors-bad-request-title = Неверный запрос
errors-conflict-title = Сейчас это невозможно
errors-busy-title = Сервис занят: повторите чуть позже
errors-internal-title = Что-то пошло не так
errors-internal-text = Запрос не выполнен по нашей вине; ошибка записана в журнал. Повторите чуть позже.
errors-back = К вашим вебхукам
