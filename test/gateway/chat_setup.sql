-- test/gateway/chat_setup.sql: the database of the chat recipe's tests
-- (test/gateway/chat.test.js), after examples/chat.sql: the gateway's login
-- role (gw_authenticator, made by setup.sql) may become app_user, the role
-- of the tokens pgapp.login gives the users the tests register.
GRANT app_user TO gw_authenticator;
