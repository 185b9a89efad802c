"""The lab's LINSTOR: the controller model, its REST API, the linstor CLI and the API's views."""
