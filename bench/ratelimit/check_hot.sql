SELECT pgapp.check_rate('hot', 1000000, 60);
