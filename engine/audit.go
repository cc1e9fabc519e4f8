package engine

// progresActor names the proGres user behind an intervention by its record
// id (the owning user), never by a person's name.
func progresActor(id string) string {
	if id == "" {
		return ""
	}
	return "progres:" + id
}

// primeroActor names a Primero user by user_name.
func primeroActor(userName string) string {
	if userName == "" {
		return ""
	}
	return "primero:" + userName
}
