DROP TABLE server_catalogs;
