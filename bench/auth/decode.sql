SELECT pgapp.decode_token(current_setting('bench.token'));
