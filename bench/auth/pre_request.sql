SELECT pgapp.pre_request();
