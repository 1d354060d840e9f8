SELECT pgapp.authenticate_request();
